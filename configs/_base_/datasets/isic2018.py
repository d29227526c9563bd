# ISIC 2018 Task 3 (HAM10000) skin lesions, 7 classes in the challenge's CSV order. Prepare with
#   python tools/dataset_converters/prepare_isic2018.py ISIC2018/ data/isic2018 --protocol hemf
# (or --protocol hifuse; add --group-by-lesion HAM10000_metadata.csv for lesion-level splits).
_base_ = ['./medical_224px.py']

dataset_type = 'ISIC2018'  # registered by hifuse_mm.datasets (official class order)
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
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, classes=classes))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, classes=classes))
test_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, classes=classes))
