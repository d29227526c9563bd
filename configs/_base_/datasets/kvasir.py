# Kvasir v1/v2 endoscopy, 8 classes (sorted folder names). Prepare with
#   python tools/dataset_converters/prepare_kvasir.py kvasir-dataset-v2/ data/kvasir
# (2 stratified folds; meta/{train,val,test}.txt = fold1, meta/fold1/ and meta/fold2/), and run
# both folds with tools/kfold.py CONFIG --folds fold1 fold2.
_base_ = ['./medical_224px.py']

dataset_type = 'Kvasir'  # registered by hifuse_mm.datasets (official class order)
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
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, classes=classes))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, classes=classes))
test_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, classes=classes))
