"""fxaug.trainers: training loops, losses and configs for the expression-transfer GANs.

Kept out of the runtime tree (src/fxaug) so that inference never imports training code;
installed as the subpackage `fxaug.trainers`.
"""
