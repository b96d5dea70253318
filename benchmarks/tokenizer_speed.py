"""Tokenizer speed of taesan against the `tokenizers` library (Rust) in one run: BPE and WordPiece training
time and encoding throughput on ~10 MB built from ../shared/data/corpus, vocab 8000, 2 cores for both.

Not a correctness test (tests/test_bpe.py and tests/test_wordpiece*.py check ids), though each encoding run
checks that both libraries give the same ids with the same vocabulary. Encoding is also compared in CPU
seconds (all threads and processes), which other jobs on a shared machine distort far less than wall time.
Usage: python benchmarks/tokenizer_speed.py [--mb 10] [--vocab 8000] [--only bpe|wordpiece]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# keep this folder off the path so `import tokenizers` always finds the Rust library
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing; benchmarks.machine_info
from benchmarks.machine_info import machine  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "data" / "corpus"


def build_corpus(directory: Path, megabytes: float) -> Path:
    """Concatenate the corpus texts (JSONL "text" fields, plain files) and repeat them up to `megabytes`."""
    texts = []
    for path in sorted(CORPUS.iterdir()):
        if path.suffix == ".jsonl":
            texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        elif path.suffix == ".txt":
            texts.append(path.read_text(encoding="utf-8").replace("\r\n", "\n"))
    blob = ("\n".join(texts) + "\n").encode("utf-8")
    want = int(megabytes * 1_000_000)
    data = (blob * (want // len(blob) + 1))[:want]
    data = data[: data.rfind(b"\n") + 1]
    out = directory / "corpus.txt"
    out.write_bytes(data)
    return out


CPU_SECONDS: dict[str, float] = {}  # label -> CPU seconds (all threads and worker processes), steadier than wall time here


def cpu_now() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn, label: str = ""):
    t0, c0 = time.perf_counter(), cpu_now()
    result = fn()
    if label:
        CPU_SECONDS[label] = cpu_now() - c0
    return time.perf_counter() - t0, result


def bench_bpe(path: Path, lines: list[str], mb: float, vocab: int, workers: int) -> list[tuple[str, float, float]]:
    import tokenizers
    from tokenizers import decoders, models, pre_tokenizers, trainers

    from taesan.tokenizers.bpe import BPETokenizer

    rust = tokenizers.Tokenizer(models.BPE())
    rust.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    rust.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    rust_train, _ = timed(lambda: rust.train([str(path)], trainer), "rust bpe train")
    first_merge = []
    t0 = time.perf_counter()
    ours_train, ours = timed(lambda: BPETokenizer.train([path], vocab_size=vocab, workers=workers,
                                                        on_merge=lambda *a: first_merge or first_merge.append(time.perf_counter())),
                                  "taesan bpe train")
    counting = first_merge[0] - t0 if first_merge else float("nan")
    print(f"  BPE train: rust {rust_train:.2f} s | taesan {ours_train:.2f} s (word counting + setup {counting:.2f} s, "
          f"merges {ours_train - counting:.2f} s) | ratio {ours_train / rust_train:.2f}x")

    # encoding: the Rust library with taesan's own vocabulary too, so both do identical work (ids are checked equal)
    same = tokenizers.Tokenizer.from_str(json.dumps(ours.to_hf_json()))
    rust_enc, r_out = timed(lambda: same.encode_batch(lines), "rust bpe encode")
    rust_own, _ = timed(lambda: rust.encode_batch(lines))
    fresh = lambda: BPETokenizer(ours.vocab, ours.merges, ours.special_tokens)  # noqa: E731 - cold cache each time
    tok = fresh()
    ours_enc, o_out = timed(lambda: tok.encode_batch(lines, padding=False), "taesan bpe encode")
    ours_warm, _ = timed(lambda: tok.encode_batch(lines, padding=False), "taesan bpe encode, warm cache")
    tok = fresh()
    ours_par, _ = timed(lambda: tok.encode_batch(lines, padding=False, workers=workers), f"taesan bpe encode, {workers} processes")
    same_ids = all(a.ids == b.ids for a, b in zip(r_out, o_out))
    print(f"  BPE encode ({len(lines)} lines): rust {mb / rust_enc:.2f} MB/s (own vocab {mb / rust_own:.2f}) | taesan "
          f"{mb / ours_enc:.2f} MB/s (one process, the default), {mb / ours_par:.2f} MB/s with {workers} processes, "
          f"{mb / ours_warm:.2f} MB/s warm cache | throughput ratio {(mb / ours_enc) / (mb / rust_enc):.2f} | same ids: {same_ids}")
    return [("BPE train (s)", rust_train, ours_train), ("BPE encode (MB/s)", mb / rust_enc, mb / ours_enc),
            (f"BPE encode, taesan {workers} processes (MB/s)", mb / rust_enc, mb / ours_par),
            ("BPE encode, taesan warm cache (MB/s)", mb / rust_enc, mb / ours_warm)]


def bench_wordpiece(path: Path, lines: list[str], mb: float, vocab: int, workers: int) -> list[tuple[str, float, float]]:
    try:
        from taesan.tokenizers.wordpiece import WordPieceTokenizer
    except ImportError as e:
        print(f"  WordPiece skipped: taesan.tokenizers.wordpiece is not importable ({e})")
        return []
    import tokenizers
    from tokenizers import models, normalizers, pre_tokenizers, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    rust = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    rust.normalizer = normalizers.BertNormalizer(lowercase=False)
    rust.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab, min_frequency=2, special_tokens=specials, show_progress=False)
    rust_train, _ = timed(lambda: rust.train([str(path)], trainer), "rust wordpiece train")
    ours_train, ours = timed(lambda: WordPieceTokenizer.train([path], vocab_size=vocab, workers=workers), "taesan wordpiece train")
    print(f"  WordPiece train: rust {rust_train:.2f} s | taesan {ours_train:.2f} s | ratio {ours_train / rust_train:.2f}x "
          "(taesan merges by likelihood score, Rust by frequency: different vocabularies)")
    # encoding: the Rust library with taesan's vocabulary too, so both do identical work (ids are checked equal)
    same = tokenizers.Tokenizer.from_str(json.dumps(ours.to_hf_json()))
    rust_enc, r_out = timed(lambda: same.encode_batch(lines), "rust wordpiece encode")
    rust_own, _ = timed(lambda: rust.encode_batch(lines), "rust wordpiece encode, own vocab")
    fresh = lambda: WordPieceTokenizer.from_hf_json(ours.to_hf_json())  # noqa: E731 - cold cache
    tok = fresh()
    ours_enc, o_out = timed(lambda: tok.encode_batch(lines, padding=False), "taesan wordpiece encode")
    ours_warm, _ = timed(lambda: tok.encode_batch(lines, padding=False), "taesan wordpiece encode, warm cache")
    same_ids = all(a.ids == b.ids and a.offsets == b.offsets for a, b in zip(r_out, o_out))
    del r_out, o_out
    tok = fresh()
    ours_par, _ = timed(lambda: tok.encode_batch(lines, padding=False, workers=workers), f"taesan wordpiece encode, {workers} processes")
    cpu_ratio = CPU_SECONDS["rust wordpiece encode"] / CPU_SECONDS["taesan wordpiece encode"]
    print(f"  WordPiece encode ({len(lines)} lines): rust {mb / rust_enc:.2f} MB/s (own vocab {mb / rust_own:.2f}) | taesan "
          f"{mb / ours_enc:.2f} MB/s (one process, the default), {mb / ours_par:.2f} MB/s with {workers} processes, "
          f"{mb / ours_warm:.2f} MB/s warm cache | throughput ratio {rust_enc / ours_enc:.2f}, "
          f"per CPU second {cpu_ratio:.2f} | same ids and offsets: {same_ids}")
    return [("WordPiece train (s)", rust_train, ours_train), ("WordPiece encode (MB/s)", mb / rust_enc, mb / ours_enc),
            (f"WordPiece encode, taesan {workers} processes (MB/s)", mb / rust_enc, mb / ours_par),
            ("WordPiece encode, taesan warm cache (MB/s)", mb / rust_enc, mb / ours_warm),
            ("WordPiece encode (MB per CPU second)", mb / CPU_SECONDS["rust wordpiece encode"],
             mb / CPU_SECONDS["taesan wordpiece encode"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0, help="corpus size in MB (default 10)")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2, help="processes for taesan, threads for Rust (default 2)")
    parser.add_argument("--only", choices=["bpe", "wordpiece"], help="run one tokenizer kind (default both)")
    parser.add_argument("--skip-wordpiece", action="store_true", help="same as --only bpe")
    args = parser.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.workers)  # before the Rust library starts its pool
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    if not CORPUS.is_dir():
        sys.exit(f"corpus not found: {CORPUS}")

    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine()}; date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
          f"load average at start: {os.getloadavg()[0]:.1f} (shared machine: other jobs compete for the cores)")
    with tempfile.TemporaryDirectory() as tmp:
        path = build_corpus(Path(tmp), args.mb)
        mb = path.stat().st_size / 1e6
        lines = path.read_text(encoding="utf-8").split("\n")
        print(f"corpus: {mb:.2f} MB from {CORPUS} (repeated), vocab {args.vocab}, {args.workers} cores each")
        rows = []
        if args.only != "wordpiece":
            rows += bench_bpe(path, lines, mb, args.vocab, args.workers)
        if args.only != "bpe" and not args.skip_wordpiece:
            rows += bench_wordpiece(path, lines, mb, args.vocab, args.workers)
    print(f"load average at end: {os.getloadavg()[0]:.1f}\n")
    print("| measure | tokenizers (Rust) | taesan | taesan / Rust |")
    print("|---|---|---|---|")
    for name, rust, ours in rows:
        print(f"| {name} | {rust:.2f} | {ours:.2f} | {ours / rust:.2f} |")
    print("\nCPU seconds (user + system, all threads and worker processes):")
    for label, seconds in CPU_SECONDS.items():
        print(f"  {label}: {seconds:.1f}")
    print("\ntargets: training time within 3x of Rust (ratio <= 3), encoding throughput within 2x (ratio >= 0.5)")
    print("note: Rust's encode_batch returns lazy Rust objects; taesan builds every Encoding column as Python lists")


if __name__ == "__main__":
    main()
