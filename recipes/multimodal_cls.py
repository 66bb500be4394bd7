"""Image+text classification: a timm image tower and a BERT-family text tower, joined by a fusion head.

    accelerate launch recipes/multimodal_cls.py    # offline demo: Lite0 + MiniLM on easy-vqa, frozen towers
    accelerate launch recipes/multimodal_cls.py --image_strategy linear_probe --text_strategy lora \
        --text_learning_rate 5e-4
    accelerate launch recipes/multimodal_cls.py --train_file data.csv --image_column_name image \\
        --text_column_names caption --label_column_name label --fusion gated

Every flag: `python recipes/multimodal_cls.py --help`. The recipe is deliberately thin: the library does the work.
"""

import sys

from hf_transfer.cli import run_recipe

if __name__ == "__main__":
    sys.exit(run_recipe("multimodal-classification"))
