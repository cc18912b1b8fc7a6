"""Generate the call engine's built-in voice prompts (trio_voip/callcenter/sounds/*.wav).

The WAVs are committed: nothing at run time or in CI needs this script or espeak-ng. Run it
only to change a voice, a wording or a prompt (then commit the WAVs it writes)::

    apt-get install espeak-ng            # the text-to-speech; nothing else is needed
    python tools/make_prompts.py         # rewrites every prompt in the package

``--voice``/``--speed`` are espeak-ng's ``-v``/``-s``; ``--out`` writes elsewhere. Each phrase
is spoken by espeak-ng (22050 Hz), resampled here to 8 kHz with a windowed-sinc low-pass
(stdlib only), trimmed of its silence at both ends (a few ms kept so concatenated words do not
click), peak-normalised to the same level and padded to whole 20 ms frames, then written with
:func:`trio_voip.rtp.wav.write_wav` (8 kHz mono 16-bit PCM, what the media tools play).
The names and words are :data:`trio_voip.callcenter.prompts.PHRASES`.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import wave
from array import array
from operator import mul
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trio_voip.callcenter.prompts import PHRASES, SOUNDS  # noqa: E402
from trio_voip.rtp.wav import write_wav  # noqa: E402

RATE = 8000
FRAME = 160  # samples in 20 ms
PEAK = 20000  # about -4 dBFS: headroom for G.711, every prompt equally loud
THRESHOLD = 0.015  # of the peak: quieter than this at either end is silence
LEAD, TAIL = 0.010, 0.030  # seconds of the silence kept before and after the speech
ZEROS = 16  # half-width of the resampling filter, in zero crossings of the output rate


def speak(text: str, voice: str, speed: int) -> tuple[array[int], int]:
    """espeak-ng's rendering of ``text``: int16 samples and their rate."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "say.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
                       check=True)
        with wave.open(str(path), "rb") as reader:
            assert (reader.getnchannels(), reader.getsampwidth()) == (1, 2)
            rate = reader.getframerate()
            samples = array("h", reader.readframes(reader.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples, rate


def resample(samples: array[int], rate: int) -> list[float]:
    """``samples`` at ``rate`` resampled to 8 kHz, low-passed below 3.8 kHz against aliasing.

    Polyphase: output sample n sits at input position n * rate / 8000, whose fraction takes
    only ``RATE / gcd`` values, so each phase's Hann-windowed sinc kernel is computed once."""
    g = math.gcd(rate, RATE)
    up, down = RATE // g, rate // g  # output n is input (n * down) / up
    cutoff = 0.95 * RATE / 2 / rate  # cycles per input sample
    half = math.ceil(ZEROS * rate / RATE)
    kernels = []
    for phase in range(up):
        frac = phase / up
        taps = []
        for k in range(-half + 1, half + 1):
            x = k - frac  # input offset from the output position
            window = 0.5 + 0.5 * math.cos(math.pi * x / half) if abs(x) < half else 0.0
            arg = 2 * cutoff * x
            sinc = 1.0 if x == 0 else math.sin(math.pi * arg) / (math.pi * arg)
            taps.append(2 * cutoff * sinc * window)
        kernels.append(taps)
    padded = [0.0] * half + [float(s) for s in samples] + [0.0] * (half + 1)
    out = []
    for n in range(len(samples) * up // down):
        base, phase = divmod(n * down, up)
        start = base + 1  # input index base - half + 1, shifted by the padding
        out.append(sum(map(mul, kernels[phase], padded[start:start + 2 * half])))
    return out


def finish(samples: list[float]) -> list[int]:
    """Trimmed, normalised to :data:`PEAK` and padded to whole frames."""
    peak = max(map(abs, samples))
    loud = [i for i, s in enumerate(samples) if abs(s) > THRESHOLD * peak]
    first = max(0, loud[0] - int(LEAD * RATE))
    last = min(len(samples), loud[-1] + 1 + int(TAIL * RATE))
    scale = PEAK / peak
    out = [round(s * scale) for s in samples[first:last]]
    return out + [0] * (-len(out) % FRAME)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voice", default="en-us")
    parser.add_argument("--speed", type=int, default=165)
    parser.add_argument("--out", type=Path, default=ROOT / "trio_voip" / "callcenter" / SOUNDS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, text in PHRASES.items():
        samples, rate = speak(text, args.voice, args.speed)
        audio = finish(resample(samples, rate))
        path = args.out / f"{name}.wav"
        write_wav(str(path), audio)
        total += path.stat().st_size
        print(f"{name:24} {len(audio) / RATE:5.2f} s  {text}")
    print(f"{len(PHRASES)} prompts, {total // 1024} KiB in {args.out}")


if __name__ == "__main__":
    main()
