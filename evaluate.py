"""Draw with a trained model, export it: `python evaluate.py --help` (same as `tf-t2i-evaluate`)."""
from tf_t2i.cli.evaluate import main

if __name__ == "__main__":
    main()
