"""`taesan demo`: the whole tour on embedded data (tour.py, with transfer.py: pretrained vs from scratch,
questions.py: cloze questions from raw paragraphs, and portable.py: a checkpoint in the HuggingFace layout read
back), its sizes (config.py) and its one-file HTML report
(report.py)."""
from taesan.demo.tour import DemoConfig, StepResult, run, write_demo_report

__all__ = ["DemoConfig", "StepResult", "run", "write_demo_report"]
