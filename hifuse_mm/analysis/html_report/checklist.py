"""The report's **Reporting checklist**: the items of CLAIM 2024 and TRIPOD+AI, each marked as
filled by this report (with the section that fills it), partly filled (what the author adds)
or to be supplied by the author.

* CLAIM 2024: Checklist for Artificial Intelligence in Medical Imaging, 2024 update (Tejani AS,
  Klontzas ME, Gatti AA, et al. Radiology: Artificial Intelligence 2024;6(4):e240300), 44 items.
* TRIPOD+AI (Collins GS, Moons KGM, Dhiman P, et al. BMJ 2024;385:e078378), 27 items with
  sub-items.

The item texts here are short paraphrases written for this report, with the checklists' item
numbers; the official wording is in the papers. An item's status depends on what the runs hold
(:class:`Coverage`): e.g. CLAIM 29 (uncertainty) is filled only when the test had
``--bootstrap`` or the run repeated over folds or seeds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

from .html import Html, esc, join, paragraph, table, tag

FILLED, PARTLY, AUTHOR = 'filled', 'partly', 'author'
STATUS_TEXT = {FILLED: 'filled by this report', PARTLY: 'partly filled',
               AUTHOR: 'author must supply'}


@dataclass
class Coverage:
    """What the report could fill in, from the runs it was built from."""
    split_record: bool = False
    audit: bool = False
    intervals: bool = False
    repeated: bool = False
    several: bool = False
    cam: bool = False
    failures: bool = False
    thresholds: bool = False
    temperature: bool = False
    versions: bool = False
    config: bool = False


Rule = Callable[[Coverage], Tuple[str, str]]


def _always(status: str, where: str = '') -> Rule:
    return lambda coverage: (status, where)


def _when(test: Callable[[Coverage], bool], yes: Tuple[str, str], no: Tuple[str, str]) -> Rule:
    return lambda coverage: yes if test(coverage) else no


AUTHOR_ONLY = _always(AUTHOR)

#: (number, paraphrase, rule) of CLAIM 2024.
CLAIM_2024: Sequence[Tuple[str, str, Rule]] = (
    ('1', 'Title or abstract names the study as AI methodology and the kind of technique '
     '(e.g. deep learning)', AUTHOR_ONLY),
    ('2', 'Structured summary of design, methods, results and conclusions', AUTHOR_ONLY),
    ('3', 'Scientific and clinical background; intended use and role of the AI', AUTHOR_ONLY),
    ('4', 'Aims, objectives and hypotheses', AUTHOR_ONLY),
    ('5', 'Prospective or retrospective study', AUTHOR_ONLY),
    ('6', 'Study goal (model creation, feasibility, non-inferiority, ...)', AUTHOR_ONLY),
    ('7', 'Data sources', _when(lambda c: c.split_record,
                                (PARTLY, 'Data: dataset and SHA-256 of its source index files; '
                                 'the author names the source and its provenance'),
                                (AUTHOR, 'the data folder has no meta/split.json'))),
    ('8', 'Inclusion and exclusion criteria of cases', AUTHOR_ONLY),
    ('9', 'Data pre-processing', _when(lambda c: c.config,
                                       (PARTLY, 'Run facts: the test pipeline in the config; '
                                        'the author adds steps before the converter'),
                                       (AUTHOR, ''))),
    ('10', 'Selection of data subsets', _when(lambda c: c.split_record,
                                              (PARTLY, 'Data: the converter protocol'),
                                              (AUTHOR, ''))),
    ('11', 'De-identification', AUTHOR_ONLY),
    ('12', 'Handling of missing data', AUTHOR_ONLY),
    ('13', 'Image acquisition protocol', AUTHOR_ONLY),
    ('14', 'Definition of the reference standard', AUTHOR_ONLY),
    ('15', 'Rationale for the reference standard', AUTHOR_ONLY),
    ('16', 'Source of reference annotations; annotators\' qualifications', AUTHOR_ONLY),
    ('17', 'Annotation of the test set', AUTHOR_ONLY),
    ('18', 'Inter- and intra-rater variability', AUTHOR_ONLY),
    ('19', 'How data were assigned to partitions', _when(
        lambda c: c.split_record, (FILLED, 'Data: protocol, seed, images per split and class'),
        (PARTLY, 'Data: images per split and class; protocol and seed are not recorded'))),
    ('20', 'Level at which partitions are disjoint', _when(
        lambda c: c.audit, (PARTLY, 'Data: split audit (duplicate images, shared groups); the '
                            'author states the level (patient, lesion, image)'),
        (AUTHOR, 'no split audit: run tools/dataset_converters/audit_splits.py'))),
    ('21', 'Intended sample size and how it was determined', AUTHOR_ONLY),
    ('22', 'Detailed description of the model', _when(
        lambda c: c.config, (PARTLY, 'Run facts: the config (architecture); the author '
                             'describes it and cites the model paper'), (AUTHOR, ''))),
    ('23', 'Software libraries, frameworks and packages with versions', _when(
        lambda c: c.versions, (FILLED, 'Run facts: versions'),
        (PARTLY, 'Run facts: versions of the report\'s environment only'))),
    ('24', 'Initialisation of model parameters', _when(
        lambda c: c.config, (PARTLY, 'Run facts: the config (init_cfg, load_from)'),
        (AUTHOR, ''))),
    ('25', 'Training approach: augmentation, hyperparameters, number of models trained', _when(
        lambda c: c.config, (PARTLY, 'Run facts: config and commands; the author adds every '
                             'model trained along the way'), (AUTHOR, ''))),
    ('26', 'How the final model was selected', _when(
        lambda c: c.config, (FILLED, 'Run facts: the checkpoint chosen on the validation split '
                             '(save_best in the config)'), (AUTHOR, ''))),
    ('27', 'Ensembling, if any', AUTHOR_ONLY),
    ('28', 'Metrics of model performance', _always(FILLED, 'Results')),
    ('29', 'Statistical measures of significance and uncertainty', _when(
        lambda c: c.intervals, (FILLED, 'Results: 95% intervals or sd; paired tests of '
                                'several runs'),
        (PARTLY, 'Results: no intervals, test with --bootstrap 1000'))),
    ('30', 'Robustness or sensitivity analysis', _when(
        lambda c: c.repeated, (PARTLY, 'Results: spread over folds or seeds; the author adds '
                               'other analyses'),
        (AUTHOR, 'e.g. tools/seeds.py for the spread over training seeds'))),
    ('31', 'Explainability methods and how they were validated', _when(
        lambda c: c.cam, (PARTLY, 'Failure analysis: Grad-CAM overlays; the author validates '
                          'them'), (AUTHOR, 'no Grad-CAM overlays in this report'))),
    ('32', 'Evaluation on internal data', _always(FILLED, 'Results: the held-out test split')),
    ('33', 'Testing on external data', AUTHOR_ONLY),
    ('34', 'Clinical trial registration', AUTHOR_ONLY),
    ('35', 'Numbers of patients or examinations included and excluded', _always(
        PARTLY, 'Data: images per split and class; the author adds patients and exclusions')),
    ('36', 'Demographic and clinical characteristics per partition', AUTHOR_ONLY),
    ('37', 'Performance metrics with statistical uncertainty', _when(
        lambda c: c.intervals, (FILLED, 'Results'),
        (PARTLY, 'Results: no intervals, test with --bootstrap 1000'))),
    ('38', 'Estimates of diagnostic performance and their precision', _when(
        lambda c: c.thresholds and c.intervals,
        (FILLED, 'Results: operating points and validation-chosen thresholds'),
        (PARTLY, 'Results: operating points; add --threshold val and --bootstrap 1000'))),
    ('39', 'Failure analysis of incorrect results', _when(
        lambda c: c.failures, (FILLED, 'Failure analysis; the author interprets it'),
        (AUTHOR, 'no predictions to analyse'))),
    ('40', 'Limitations', AUTHOR_ONLY),
    ('41', 'Implications for practice', AUTHOR_ONLY),
    ('42', 'Full study protocol or further technical details', _always(
        PARTLY, 'Run facts: commands and config; the author gives the protocol')),
    ('43', 'Availability of software, trained model and data', _always(
        PARTLY, 'Run facts: hifuse-mm version, checkpoint SHA-256; the author says where they '
        'are available')),
    ('44', 'Funding and the funders\' role', AUTHOR_ONLY),
)

#: (number, paraphrase, rule) of TRIPOD+AI.
TRIPOD_AI: Sequence[Tuple[str, str, Rule]] = (
    ('1', 'Title: developing or evaluating a prediction model, population, outcome',
     AUTHOR_ONLY),
    ('2', 'Abstract (TRIPOD+AI for Abstracts)', AUTHOR_ONLY),
    ('3a', 'Healthcare context, rationale, existing models', AUTHOR_ONLY),
    ('3b', 'Target population, intended purpose and users', AUTHOR_ONLY),
    ('3c', 'Known health inequalities between groups', AUTHOR_ONLY),
    ('4', 'Objectives: development, evaluation or both', AUTHOR_ONLY),
    ('5a', 'Data sources for development and evaluation; representativeness', _when(
        lambda c: c.split_record, (PARTLY, 'Data: dataset, source checksums'), (AUTHOR, ''))),
    ('5b', 'Dates of data collection', AUTHOR_ONLY),
    ('6a', 'Setting; number and location of centres', AUTHOR_ONLY),
    ('6b', 'Eligibility criteria', AUTHOR_ONLY),
    ('6c', 'Treatments received, if relevant', AUTHOR_ONLY),
    ('7', 'Data pre-processing and quality checks', _when(
        lambda c: c.audit, (PARTLY, 'Data: split audit; Run facts: the test pipeline'),
        (PARTLY, 'Run facts: the test pipeline; no split audit'))),
    ('8a', 'Outcome (class labels): definition, how and when assessed', AUTHOR_ONLY),
    ('8b', 'Qualifications of outcome assessors', AUTHOR_ONLY),
    ('8c', 'Blinding of outcome assessment', AUTHOR_ONLY),
    ('9a', 'Choice of predictors (inputs)', AUTHOR_ONLY),
    ('9b', 'Definition of the predictors (the image input)', _when(
        lambda c: c.config, (PARTLY, 'Run facts: input size and normalisation in the config'),
        (AUTHOR, ''))),
    ('9c', 'Qualifications of predictor assessors', AUTHOR_ONLY),
    ('10', 'How the study size was arrived at', AUTHOR_ONLY),
    ('11', 'Handling of missing data', AUTHOR_ONLY),
    ('12a', 'How the data were used and partitioned', _when(
        lambda c: c.split_record, (FILLED, 'Data'), (PARTLY, 'Data: counts only'))),
    ('12b', 'Handling of predictors (rescaling, standardisation)', _when(
        lambda c: c.config, (FILLED, 'Run facts: the config'), (AUTHOR, ''))),
    ('12c', 'Model type, building steps, tuning, internal validation', _when(
        lambda c: c.config, (PARTLY, 'Run facts: config, checkpoint selection on validation; '
                             'the author adds the tuning'), (AUTHOR, ''))),
    ('12d', 'Heterogeneity across clusters (e.g. hospitals)', AUTHOR_ONLY),
    ('12e', 'Performance measures and plots; comparison of models', _always(
        FILLED, 'Results')),
    ('12f', 'Model updating (e.g. recalibration)', _when(
        lambda c: c.temperature, (FILLED, 'Results: temperature scaling fitted on validation'),
        (AUTHOR, 'none in this run; --calibrate val adds temperature scaling'))),
    ('12g', 'How the predictions were computed for evaluation', _always(
        FILLED, 'Run facts: commands, checkpoint SHA-256')),
    ('13', 'Class imbalance methods', _when(
        lambda c: c.config, (PARTLY, 'Run facts: loss and sampler in the config'),
        (AUTHOR, ''))),
    ('14', 'Approaches to model fairness', AUTHOR_ONLY),
    ('15', 'Model output; thresholds and how they were chosen', _when(
        lambda c: c.thresholds, (FILLED, 'Results: thresholds chosen on validation'),
        (PARTLY, 'Results: probabilities and arg-max classes; no thresholds'))),
    ('16', 'Differences between development and evaluation data', AUTHOR_ONLY),
    ('17', 'Ethics approval and consent', AUTHOR_ONLY),
    ('18a', 'Funding', AUTHOR_ONLY),
    ('18b', 'Conflicts of interest', AUTHOR_ONLY),
    ('18c', 'Protocol', AUTHOR_ONLY),
    ('18d', 'Registration', AUTHOR_ONLY),
    ('18e', 'Data availability', _always(PARTLY, 'Data: split list checksums; the author says '
                                         'where the data are')),
    ('18f', 'Code availability', _always(PARTLY, 'Run facts: hifuse-mm version and commands; '
                                         'the author links the code')),
    ('19', 'Patient and public involvement', AUTHOR_ONLY),
    ('20a', 'Flow of participants, with and without the outcome', _always(
        PARTLY, 'Data: split flow, images per class; the author adds patients')),
    ('20b', 'Characteristics per data source', AUTHOR_ONLY),
    ('20c', 'Development vs evaluation data distributions', _always(
        PARTLY, 'Data: classes per split; the author adds demographics')),
    ('21', 'Participants and outcome events in each analysis', _always(
        PARTLY, 'Data: images per split and class')),
    ('22', 'Full model for predictions in new individuals', _when(
        lambda c: c.config, (PARTLY, 'Run facts: config and checkpoint SHA-256; the author '
                             'says where the model is'), (AUTHOR, ''))),
    ('23a', 'Performance with confidence intervals, incl. key subgroups', _when(
        lambda c: c.intervals, (PARTLY, 'Results: intervals overall and per class; the author '
                                'adds subgroups'),
        (PARTLY, 'Results: no intervals, test with --bootstrap 1000'))),
    ('23b', 'Heterogeneity of performance across clusters', AUTHOR_ONLY),
    ('24', 'Results of model updating', _when(
        lambda c: c.temperature, (FILLED, 'Results: before and after temperature scaling'),
        (AUTHOR, ''))),
    ('25', 'Overall interpretation, incl. fairness', AUTHOR_ONLY),
    ('26', 'Limitations', AUTHOR_ONLY),
    ('27a', 'Handling poor-quality or missing inputs in use', AUTHOR_ONLY),
    ('27b', 'User interaction and expertise required', AUTHOR_ONLY),
    ('27c', 'Next steps for research', AUTHOR_ONLY),
)

#: Report section anchors named in the "where" texts.
ANCHORS = (('Data', 'data'), ('Results', 'results'), ('Failure analysis', 'failures'),
           ('Run facts', 'run-facts'))


def _where(text: str) -> Html:
    """The "where" text with a link to the section it starts with."""
    for name, anchor in ANCHORS:
        if text.startswith(name):
            return Html(f'<a href="#{anchor}">{esc(name)}</a>{esc(text[len(name):])}')
    return Html(esc(text))


def evaluate(items: Sequence[Tuple[str, str, Rule]], coverage: Coverage) -> List[tuple]:
    """``[(number, text, status, where), ...]``."""
    return [(number, text, *rule(coverage)) for number, text, rule in items]


def _table(name: str, rows: List[tuple]) -> Html:
    counts = {s: sum(1 for r in rows if r[2] == s) for s in (FILLED, PARTLY, AUTHOR)}
    body = [[number, text,
             Html(f'<span class="{status}">{esc(STATUS_TEXT[status])}</span>'),
             _where(where)] for number, text, status, where in rows]
    return join([tag('h3', name),
                 paragraph(f'{len(rows)} items: {counts[FILLED]} filled by this report, '
                           f'{counts[PARTLY]} partly, {counts[AUTHOR]} for the author.'),
                 table(['item', 'what it asks (paraphrased)', 'status', 'where / what to add'],
                       body, class_='checklist')])


def checklist_section(coverage: Coverage) -> Html:
    """Both checklists with the status of every item."""
    return join([
        paragraph('Item numbers of CLAIM 2024 (Tejani et al., Radiology: Artificial Intelligence '
                  '2024;6(4):e240300) and TRIPOD+AI (Collins et al., BMJ 2024;385:e078378); the '
                  'texts are short paraphrases, see the papers for the wording. "Author must '
                  'supply" items are about the study, not the run: no tool can know them.'),
        _table('CLAIM 2024', evaluate(CLAIM_2024, coverage)),
        _table('TRIPOD+AI', evaluate(TRIPOD_AI, coverage))])
