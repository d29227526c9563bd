# COVID19-CT (UCSD-AI4H COVID-CT), 2 classes (COVID = 0, NonCOVID = 1). Prepare with
#   python tools/dataset_converters/prepare_covid19ct.py COVID-CT/ data/covid19ct --protocol official
# (the released patient-level lists: 425 / 118 / 203 images; or --protocol random, 0.6/0.15/0.25).
# MedicalMetrics' binary AUC uses the score of class 1 (NonCOVID); set
# val_evaluator = dict(type='MedicalMetrics', pos_label=0) for COVID as the positive class.
_base_ = ['./medical_224px.py']

dataset_type = 'COVID19CT'  # registered by hifuse_mm.datasets (official class order)
data_root = 'data/covid19ct/'
classes = [
    'COVID',
    'NonCOVID',
]

data_preprocessor = dict(num_classes=2)
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, classes=classes))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, classes=classes))
test_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, classes=classes))
