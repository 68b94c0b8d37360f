"""Convert torchvision and timm models where those packages are installed (they are not needed elsewhere).

Run from the repository root::

    python benchmarks/convert_zoo.py [--device cuda] [--dtype float32]

For each model that can be built (random weights, eval mode): the conversion report
(every convolution converted, or the reason it was not), and the largest difference of
the outputs on one standard-normal batch relative to the largest output, for
``alpha = inf`` and ``alpha = 40``. A model whose package is missing is skipped with a
line saying so.
"""

from __future__ import annotations

import argparse

MODELS = [("torchvision", "resnet18", (3, 224, 224)), ("torchvision", "mobilenet_v3_large", (3, 224, 224)),
          ("torchvision", "efficientnet_b0", (3, 224, 224)), ("torchvision", "convnext_tiny", (3, 224, 224)),
          ("torchvision", "r3d_18", (3, 16, 112, 112)), ("timm", "mixnet_s", (3, 224, 224))]


def build(package: str, name: str):
    if package == "torchvision":
        import torchvision

        fn = getattr(torchvision.models, name, None) or getattr(torchvision.models.video, name)
        return fn(weights=None)
    import timm

    return timm.create_model(name, pretrained=False)


def main() -> None:
    import torch

    from attn_expressivity import convert_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--batch", type=int, default=2)
    args = p.parse_args()
    dtype = getattr(torch, args.dtype)
    for package, name, shape in MODELS:
        try:
            torch.manual_seed(0)
            model = build(package, name).eval().to(device=args.device, dtype=dtype)
        except Exception as exc:  # noqa: BLE001 - a missing or broken package: say so, go on
            print(f"{package}.{name}: skipped ({type(exc).__name__}: {exc})")
            continue
        x = torch.randn((args.batch,) + shape, generator=torch.Generator().manual_seed(1)).to(args.device, dtype)
        with torch.inference_mode():
            ref = model(x)
            line = []
            for alpha in (float("inf"), 40.0):
                converted, report = convert_model(model, alpha=alpha, strict=False)
                diff = float((converted(x) - ref).abs().max() / ref.abs().max())
                line.append(f"alpha={alpha}: max rel. difference {diff:.1e}")
        print(f"{package}.{name}: {len(report.converted)} convolutions converted ({report.n_heads} heads), "
              f"{len(report.skipped)} kept; " + "; ".join(line))
        for s in report.skipped:
            print(f"    kept {s['name']}: {s['reason']}")


if __name__ == "__main__":
    main()
