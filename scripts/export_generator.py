"""A generator on its own: `python scripts/export_generator.py ckpt_path=PATH out=FOLDER` (config.json + model.safetensors)."""

from gan_lightning.export import main

if __name__ == "__main__":
    main()
