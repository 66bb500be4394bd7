"""Image classification by transfer from a timm checkpoint.

    accelerate launch recipes/image_cls.py                     # offline demo: Lite0 on 5,000 MNIST digits
    accelerate launch recipes/image_cls.py --config recipes/configs/image_linear_probe.yaml
    accelerate launch recipes/image_cls.py --model_name_or_path timm/resnet50.a1_in1k --dataset_name beans

Every flag: `python recipes/image_cls.py --help`. The recipe is deliberately thin: the library does the work.
"""

import sys

from hf_transfer.cli import run_recipe

if __name__ == "__main__":
    sys.exit(run_recipe("image-classification"))
