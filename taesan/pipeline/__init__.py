"""From a checkpoint directory to answers: loading a checkpoint with everything beside it, text in and text out,
the pretraining recipe, and task-level callables. What the CLI, the server and the demo call."""
