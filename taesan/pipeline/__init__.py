"""From a checkpoint directory to answers, the floor the CLI, the server and the demo stand on: a checkpoint with
everything beside it (bundle.py), text in and text out (text.py), sentence scores and blank fills (lm.py), the
pretraining recipe (pretrain.py), `taesan.pipeline(dir)` per task (tasks.py) and HF conversion (convert.py).

`taesan.pipeline` is the function of tasks.py; import these modules by name (`from taesan.pipeline.bundle import
Bundle`)."""
