"""Explore generators in the browser: `python scripts/demo.py [model=NAME | ckpt_path=PATH] [port=7860]` (needs the demo extra)."""

import sys

try:
    from gan_lightning.demo import main
except ImportError as e:  # Gradio is an optional extra; the message says how to install it
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    main()
