"""The transfer study: rank candidate checkpoints for a target task before fine-tuning any of them."""
