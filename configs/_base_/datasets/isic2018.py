# ISIC 2018 Task 3 (HAM10000) skin lesions, 7 classes in the challenge's CSV order.
_base_ = ['./medical_224px.py']

data_root = 'data/isic2018/'
classes = [
    'MEL',
    'NV',
    'BCC',
    'AKIEC',
    'BKL',
    'DF',
    'VASC',
]

data_preprocessor = dict(num_classes=7)
train_dataloader = dict(dataset=dict(data_root=data_root, classes=classes))
val_dataloader = dict(dataset=dict(data_root=data_root, classes=classes))
test_dataloader = dict(dataset=dict(data_root=data_root, classes=classes))
