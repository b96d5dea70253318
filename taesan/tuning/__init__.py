"""Ways to adapt a pretrained model to a task: full fine-tuning (finetune.py), prompt tuning and
in-context learning."""
