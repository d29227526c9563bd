# COVID19-CT (UCSD-AI4H COVID-CT), 2 classes, official split.
_base_ = ['./medical_224px.py']

data_root = 'data/covid19ct/'
classes = [
    'COVID',
    'NonCOVID',
]

data_preprocessor = dict(num_classes=2)
train_dataloader = dict(dataset=dict(data_root=data_root, classes=classes))
val_dataloader = dict(dataset=dict(data_root=data_root, classes=classes))
test_dataloader = dict(dataset=dict(data_root=data_root, classes=classes))
