"""Plant leaf disease (and any image folder) classification by transfer learning.

`python -m projects.plant_cnn train --data-dir ../shared/data/plantvillage` fine-tunes an
ImageNet backbone; `--backbone seed_cnn` trains the seed's small CNN from scratch instead.
"""
