"""Make the small, deterministic data sets the example spec files train on.

Run from anywhere: ``python examples/data/make_data.py``.  Every file it
writes is byte-for-byte the same on every run (fixed seeds, fixed rounding),
so the files in the repository can always be regenerated and compared.

* ``nielsen_digits.npz`` — 32 synthetic 28×28 "digits" (seven-segment strokes,
  jittered and thickened at random), pixels in [0, 1]: ``x`` is 784×32 and
  ``y`` 10×32 one-hot, both in the columns layout (samples are columns).
* ``classes_x.csv``, ``classes_y.csv`` — 24 samples of 4 features in three
  clusters, and their one-hot classes: rows layout (samples are rows).
* ``digits.npz`` — 1000 synthetic 8×8 digits made the way scikit-learn's
  ``load_digits`` set was (32×32 bitmaps counted in 4×4 blocks, 0–16 per
  pixel), here from seven-segment strokes shifted, slanted, thickened, with
  strokes dropped and pixels flipped at random; scaled to [0, 1] (sixteenths).
  ``x`` is 1000×64 and ``y`` 1000×10 one-hot: the rows layout (samples are
  rows), as PyTorch keeps them.  (scikit-learn is not a dependency, so its
  bundled set is not used.)
* ``eight.csv`` — the 8×8 identity: the eight one-hot patterns of the
  classic 8-3-8 autoencoder (Rumelhart, Hinton and Williams, 1986).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# which of the seven segments (top, top right, bottom right, bottom, bottom left, top left, middle) each digit lights
SEGMENTS = {
    0: "abcdef", 1: "bc", 2: "abged", 3: "abgcd", 4: "fgbc",
    5: "afgcd", 6: "afgedc", 7: "abc", 8: "abcdefg", 9: "abcdfg",
}
# each segment as a line from (row, col) to (row, col) in a 20×12 box
STROKES = {
    "a": ((0, 0), (0, 11)), "b": ((0, 11), (9, 11)), "c": ((10, 11), (19, 11)),
    "d": ((19, 0), (19, 11)), "e": ((10, 0), (19, 0)), "f": ((0, 0), (9, 0)), "g": ((9, 0), (9, 11)),
}


def digit_image(digit: int, rng: np.random.Generator) -> np.ndarray:
    """A 28×28 image of ``digit`` in [0, 1], shifted, slanted and thickened at random."""
    image = np.zeros((28, 28))
    top, left = 4 + rng.integers(-2, 3), 8 + rng.integers(-2, 3)
    slant = rng.uniform(-0.25, 0.25)
    thickness = rng.integers(1, 3)
    for segment in SEGMENTS[digit]:
        (r0, c0), (r1, c1) = STROKES[segment]
        for t in np.linspace(0.0, 1.0, 40):
            r, c = r0 + t * (r1 - r0), c0 + t * (c1 - c0)
            row, col = int(round(top + r)), int(round(left + c + slant * (10 - r)))
            image[max(row - thickness + 1, 0):row + thickness, max(col - thickness + 1, 0):col + thickness] = 1.0
    # a light blur, as a scanned pen stroke has soft edges
    blurred = image.copy()
    blurred[1:, :] += 0.25 * image[:-1, :]
    blurred[:-1, :] += 0.25 * image[1:, :]
    blurred[:, 1:] += 0.25 * image[:, :-1]
    blurred[:, :-1] += 0.25 * image[:, 1:]
    return np.round(np.clip(blurred, 0.0, 1.0) * 8) / 8  # eighths: exact in float16, and small when compressed


def nielsen_digits(samples: int = 32, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    digits = [k % 10 for k in range(samples)]
    x = np.stack([digit_image(d, rng).reshape(784) for d in digits], axis=1)
    y = np.zeros((10, samples))
    y[digits, range(samples)] = 1.0
    return x.astype(np.float16), y.astype(np.float16)


def digit_bitmap(digit: int, rng: np.random.Generator) -> np.ndarray:
    """A 32×32 0/1 bitmap of ``digit``: strokes shifted, slanted, thickened; one may be dropped; 1% flipped."""
    image = np.zeros((32, 32))
    top, left = 5 + rng.integers(-2, 3), 9 + rng.integers(-2, 3)
    slant = rng.uniform(-0.3, 0.3)
    thickness = rng.integers(1, 4)
    segments = list(SEGMENTS[digit])
    if len(segments) > 2 and rng.random() < 0.15:  # a faint stroke the scanner missed
        segments.pop(rng.integers(len(segments)))
    for segment in segments:
        (r0, c0), (r1, c1) = STROKES[segment]
        for t in np.linspace(0.0, 1.0, 40):
            r, c = r0 + t * (r1 - r0), c0 + t * (c1 - c0)
            row, col = int(round(top + r)), int(round(left + c + slant * (10 - r)))
            image[max(row - thickness + 1, 0):row + thickness, max(col - thickness + 1, 0):col + thickness] = 1.0
    flips = rng.random((32, 32)) < 0.01
    return np.where(flips, 1.0 - image, image)


def digits_8x8(samples: int = 1000, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """8×8 digits in [0, 1] (sixteenths), rows layout, and one-hot targets; classes in a shuffled order."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation([k % 10 for k in range(samples)])
    x = np.stack([digit_bitmap(int(d), rng).reshape(8, 4, 8, 4).sum(axis=(1, 3)).reshape(64) for d in labels])
    y = np.zeros((samples, 10))
    y[range(samples), labels] = 1.0
    return (x / 16).astype(np.float16), y.astype(np.uint8)


def clusters(per_class: int = 8, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[1.0, 0.0, 0.5, -0.5], [-1.0, 0.5, 0.0, 0.5], [0.0, -1.0, -0.5, 0.0]])
    x = np.concatenate([c + 0.3 * rng.standard_normal((per_class, 4)) for c in centres])
    y = np.repeat(np.eye(3), per_class, axis=0)
    order = rng.permutation(len(x))
    return np.round(x[order], 3), y[order]


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Like ``np.savez_compressed``, but with fixed timestamps, so the bytes never change."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def write_csv(path: Path, array: np.ndarray, fmt: str) -> None:
    np.savetxt(path, array, fmt=fmt, delimiter=",")


def main(folder: Path = HERE) -> None:
    """Write every data file into ``folder`` (by default, this script's own)."""
    x, y = nielsen_digits()
    write_npz(folder / "nielsen_digits.npz", x=x, y=y)
    x, y = digits_8x8()
    write_npz(folder / "digits.npz", x=x, y=y)
    x, y = clusters()
    write_csv(folder / "classes_x.csv", x, "%.3f")
    write_csv(folder / "classes_y.csv", y, "%d")
    write_csv(folder / "eight.csv", np.eye(8), "%d")


if __name__ == "__main__":
    main()
