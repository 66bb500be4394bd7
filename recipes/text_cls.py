"""Text classification by transfer from a BERT-family checkpoint.

    accelerate launch recipes/text_cls.py                     # offline demo: MiniLM on Rotten Tomatoes snippets
    accelerate launch recipes/text_cls.py --model_name_or_path bert-base-uncased --dataset_name imdb
    accelerate launch recipes/text_cls.py --train_file pairs.csv --text_column_names premise,hypothesis

Every flag: `python recipes/text_cls.py --help`. The recipe is deliberately thin: the library does the work.
"""

import sys

from hf_transfer.cli import run_recipe

if __name__ == "__main__":
    sys.exit(run_recipe("text-classification"))
