"""Copies of manifests whose audio travels with them: each utterance's audio as training reads it
(16 kHz, mono; a segment alone where the manifest gives an offset) written as 16-bit FLAC, or as a
float WAV where its samples are not 16-bit ones (resampled audio), so the samples stay the same;
the manifests are rewritten with paths relative to their folder, which can then be carried to
another machine (a lent GPU: bench/gpu_seeds.sh).

    python bench/portable_manifests.py data/an4/manifests/train.jsonl data/an4/manifests/dev.jsonl \\
        --out gpu/an4/manifests

Writes OUT/<name>.jsonl for each manifest and OUT/audio/<id>.flac (or .wav); prints the folder's size.
AN4's train and dev sets come to about 40 MB, inside the device tool's 64 MiB.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("manifests", nargs="+")
    p.add_argument("--out", required=True)
    a = p.parse_args()

    import numpy as np
    import soundfile as sf

    from asr.audio import SAMPLE_RATE, load_audio
    from asr.manifest import file_stem, read_manifest, write_manifest

    out = Path(a.out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    for manifest in a.manifests:
        copies = []
        for utt in read_manifest(manifest):
            whole = utt.offset is None  # else a segment of a longer file: only the segment travels
            wave = load_audio(utt.audio, offset=utt.offset or 0.0, duration=None if whole else utt.duration).numpy()
            name = f"audio/{file_stem(utt.id)}.flac"
            sf.write(str(out / name), wave, SAMPLE_RATE, subtype="PCM_16")
            if not np.array_equal(sf.read(str(out / name), dtype="float32")[0], wave):
                (out / name).unlink()  # not 16-bit samples (e.g. resampled): float WAV, as exact and larger
                name = f"audio/{file_stem(utt.id)}.wav"
                sf.write(str(out / name), wave, SAMPLE_RATE, subtype="FLOAT")
            copies.append(dataclasses.replace(utt, audio=name, offset=None))
        write_manifest(copies, out / Path(manifest).name)
        print(f"{out / Path(manifest).name}: {len(copies)} utterances")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
