"""Train a text-to-image GAN: `python train.py --help` (same as the `tf-t2i-train` command)."""
from tf_t2i.cli.train import main

if __name__ == "__main__":
    main()
