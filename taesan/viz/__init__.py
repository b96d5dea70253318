"""Pictures of what a model attends to: text attention maps per layer and head (attention.py) and the ViT
attention rollout over an image (rollout.py)."""
