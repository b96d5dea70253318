"""The warnings after an evaluation (taesan.tuning.checks) for a classifier: one label for everything, or an accuracy
no better than always answering the most common label, with the bar set by the number of examples."""
from types import SimpleNamespace

from taesan.tuning.checks import evaluation_warnings

NLI = SimpleNamespace(labels=["entailment", "neutral", "contradiction"])


def test_accuracy_within_noise_of_the_majority_label_is_named():
    at_chance = {"accuracy": 0.338, "majority_share": 0.336, "examples": 420, "most_predicted_share": 0.47}
    [line] = evaluation_warnings(NLI, at_chance)
    assert line.startswith("warning: accuracy 33.8% on 420 examples is no better than always answering the most "
                           "common label (33.6%; at this size a real gain needs 38.2% or more)")
    assert "--epochs 10" in line  # what to try: a pretrained start alone did not lift KLUE-NLI off chance
    assert evaluation_warnings(NLI, {**at_chance, "accuracy": 0.46}) == []


def test_the_bar_follows_the_number_of_examples():
    # 36% over 420 examples is noise; over 4,200 it is 2.4 points above 33.6% where the noise is 1.5
    few = {"accuracy": 0.36, "majority_share": 0.336, "examples": 420, "most_predicted_share": 0.4}
    assert len(evaluation_warnings(NLI, few)) == 1
    assert evaluation_warnings(NLI, {**few, "examples": 4200}) == []


def test_one_label_for_everything_gets_one_warning_not_two():
    stuck = {"accuracy": 0.5, "majority_share": 0.5, "examples": 80, "most_predicted_share": 1.0}
    [line] = evaluation_warnings(SimpleNamespace(labels=["0", "1"]), stuck)
    assert "gives one label to 100% of the 80 examples" in line


def test_metrics_without_a_majority_share_say_nothing_about_it():
    # an older eval_results.json, or a set with one gold label (every answer either right or wrong by construction)
    assert evaluation_warnings(NLI, {"accuracy": 0.3, "examples": 420, "most_predicted_share": 0.4}) == []
    assert evaluation_warnings(NLI, {"accuracy": 0.3, "majority_share": 1.0, "examples": 420, "most_predicted_share": 0.4}) == []
