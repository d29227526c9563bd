# Kvasir v2 endoscopy, 8 classes (sorted folder names).
_base_ = ['./medical_224px.py']

data_root = 'data/kvasir/'
classes = [
    'dyed-lifted-polyps',
    'dyed-resection-margins',
    'esophagitis',
    'normal-cecum',
    'normal-pylorus',
    'normal-z-line',
    'polyps',
    'ulcerative-colitis',
]

data_preprocessor = dict(num_classes=8)
train_dataloader = dict(dataset=dict(data_root=data_root, classes=classes))
val_dataloader = dict(dataset=dict(data_root=data_root, classes=classes))
test_dataloader = dict(dataset=dict(data_root=data_root, classes=classes))
