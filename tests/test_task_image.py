"""Image classification: pixel normalisation by hand, MNIST idx / CSV / digits readers and their errors, ViT
end to end on sklearn's digits (loss falls, predictions, save/load), the real MNIST and digits files."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

import taesan
from taesan.errors import TaesanError
from taesan.tasks.image import ImageClassification, load_image, to_pixels
from taesan.tasks.readers.images import ImageExample, digits, read_images
from taesan.train import TrainConfig
from taesan.tuning.finetune import finetune, load_finetuned


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder, n=5, gz=True, prefix="train"):
    images = np.arange(n * 4 * 4).reshape(n, 4, 4) % 256
    labels = np.arange(n) % 3
    ext = ".gz" if gz else ""
    pack = gzip.compress if gz else (lambda b: b)
    (folder / f"{prefix}-images-idx3-ubyte{ext}").write_bytes(pack(idx_bytes(images, 2051)))
    (folder / f"{prefix}-labels-idx1-ubyte{ext}").write_bytes(pack(idx_bytes(labels, 2049)))
    return folder / f"{prefix}-images-idx3-ubyte{ext}", images, labels


def test_to_pixels_by_hand():
    img = ImageExample(np.array([[0, 16], [8, 4]], np.float32), "1", 16.0)
    x = to_pixels(img, 2, 1, 0.5, 0.5)
    assert x.shape == (1, 2, 2)
    assert x[0].tolist() == [[-1.0, 1.0], [0.0, -0.5]]  # (p/16 - 0.5) / 0.5
    rgb = to_pixels(img, 2, 3, 0.5, 0.5)
    assert rgb.shape == (3, 2, 2) and torch.equal(rgb[0], rgb[2])
    colour = ImageExample(np.stack([np.zeros((2, 2)), np.full((2, 2), 255.0), np.zeros((2, 2))]), None, 255.0)
    assert to_pixels(colour, 2, 1, 0.0, 1.0).flatten().tolist() == pytest.approx([1 / 3] * 4)  # mean of the channels
    big = ImageExample(np.full((28, 28), 255.0, np.float32), None, 255.0)
    small = to_pixels(big, 8, 1, 0.5, 0.5)
    assert small.shape == (1, 8, 8) and torch.allclose(small, torch.ones(1, 8, 8))  # a flat image stays flat


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reader_finds_labels_beside(tmp_path, gz):
    path, images, labels = write_mnist(tmp_path, gz=gz)
    ex = read_images(path)
    assert len(ex) == 5 and [e.label for e in ex] == [str(y) for y in labels]
    assert np.array_equal(ex[2].pixels, images[2]) and ex[2].max_value == 255.0


def test_idx_reader_errors(tmp_path):
    path, _, _ = write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(TaesanError, match="no labels file train-labels-idx1-ubyte"):
        read_images(path)
    bad = tmp_path / "x-images-idx3-ubyte"
    bad.write_bytes(idx_bytes(np.zeros((2, 3)), 2049))
    with pytest.raises(TaesanError, match="not an idx file with 3 dimension"):
        read_images(bad)
    short = tmp_path / "y-images-idx3-ubyte"
    short.write_bytes(idx_bytes(np.zeros((2, 4, 4)), 2051)[:-3])
    with pytest.raises(TaesanError, match="the file holds 29"):
        read_images(short)
    fewer = tmp_path / "z-images-idx3-ubyte"
    fewer.write_bytes(idx_bytes(np.zeros((2, 4, 4)), 2051))
    (tmp_path / "z-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3), 2049))
    with pytest.raises(TaesanError, match="3 labels for 2 images"):
        read_images(fewer)
    odd = tmp_path / "pictures.bin"
    odd.write_bytes(b"1234")
    with pytest.raises(TaesanError, match="pictures.bin: not an idx file"):
        read_images(odd)
    with pytest.raises(TaesanError, match="no such file"):
        read_images(tmp_path / "missing.csv")


def test_csv_reader_and_errors(tmp_path):
    f = tmp_path / "d.csv.gz"
    f.write_bytes(gzip.compress(b"0,16,8,4,3\n1,1,1,1,7.0\n"))
    ex = read_images(f)
    assert [e.label for e in ex] == ["3", "7"] and ex[0].pixels.tolist() == [[0, 16], [8, 4]] and ex[0].max_value == 16.0
    for content, message in [("1,2,3\n", "line 1: 3 fields"), ("1,2,3,4,5\n1,2,3,4\n", "line 2: expected 5"),
                             ("1,x,3,4,5\n", "line 1: a pixel value is not a number"), ("1,2,3,4,\n", "line 1: empty label")]:
        g = tmp_path / "e.csv"
        g.write_text(content)
        with pytest.raises(TaesanError, match=message) as e:
            read_images(g)
        assert str(g) in str(e.value)


def test_load_image_inputs(tmp_path):
    from PIL import Image

    assert load_image("digits:5").label == "5"
    Image.fromarray(np.full((6, 6), 200, np.uint8)).save(tmp_path / "a.png")
    png = load_image(str(tmp_path / "a.png"))
    assert png.pixels.shape == (6, 6) and png.pixels[0, 0] == 200
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "c.png")
    assert load_image(str(tmp_path / "c.png")).pixels.shape == (3, 4, 5)
    np.save(tmp_path / "a.npy", np.ones((8, 8)))
    assert load_image(str(tmp_path / "a.npy")).pixels.shape == (8, 8)
    for text, message in [("digits:9999", "expected digits:N"), (str(tmp_path / "none.png"), "no such image file")]:
        with pytest.raises(TaesanError, match=message):
            load_image(text)
    (tmp_path / "bad.png").write_text("not a png")
    with pytest.raises(TaesanError, match="not an image file"):
        load_image(str(tmp_path / "bad.png"))


def test_vit_on_digits_end_to_end(tmp_path):
    data = digits()
    assert len(data) == 1797 and data[0].pixels.shape == (8, 8)
    train, valid = data[:400], data[1700:1760]
    task = ImageClassification()
    torch.manual_seed(0)  # 60 unseeded steps ended anywhere from 10% to 37% with the test order's random state
    model = taesan.create("vit-tiny", d_model=32, n_heads=2, d_ff=64)
    config = TrainConfig(max_steps=150, lr=3e-3, warmup=5, eval_every=0, save_every=0, log_every=1, progress=False)
    result = finetune(task, model, train, valid, tmp_path / "vit", config, batch_size=32)
    rows = [json.loads(line) for line in (tmp_path / "vit" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3  # from ln 10 = 2.30
    assert result.metrics["accuracy"] > 0.3 and task.labels == [str(i) for i in range(10)]
    assert task.config.image_size == 8 and task.config.channels == 1
    preds = task.predict(result.model, ["digits:1700", data[1701]])
    assert all(set(p) == {"label", "probability", "probabilities"} and len(p["probabilities"]) == 10 for p in preds)
    model2, task2 = load_finetuned(tmp_path / "vit")
    again = task2.predict(model2, ["digits:1700", data[1701]])
    assert [p["label"] for p in again] == [p["label"] for p in preds]
    assert [p["probability"] for p in again] == pytest.approx([p["probability"] for p in preds], abs=1e-6)


def test_mnist_resized_into_digits_model_and_unknown_label():
    task = ImageClassification()
    task.fit_labels([ImageExample(np.zeros((8, 8)), str(i)) for i in range(3)])
    model = task.build_model(taesan.create("vit-tiny"))
    assert model.config.num_labels == 3 and model.config.labels == ["0", "1", "2"]
    feature = task.encode(ImageExample(np.zeros((28, 28)), "2", 255.0))[0]
    assert feature["pixel_values"].shape == (1, 8, 8) and feature["labels"] == 2
    with pytest.raises(TaesanError, match="mnist, image 4: unknown label '7'"):
        task.encode(ImageExample(np.zeros((28, 28)), "7", 255.0, "mnist, image 4"))
    with pytest.raises(TaesanError, match="needs a ViT"):
        task.build_model(taesan.create("bert", vocab_size=50, d_model=32, n_layers=1, n_heads=2))


def test_real_mnist_and_digits_csv(shared_data):
    mnist = read_images(shared_data / "images" / "mnist_t10k-images-idx3-ubyte.gz")
    assert len(mnist) == 10000 and mnist[0].pixels.shape == (28, 28) and mnist[0].label == "7"  # MNIST's first test digit
    assert {e.label for e in mnist} == {str(i) for i in range(10)}
    csv = read_images(shared_data / "images" / "sklearn_digits.csv.gz")
    bundled = digits()
    assert len(csv) == 1797 and csv[0].max_value == 16.0
    assert np.array_equal(csv[10].pixels, bundled[10].pixels) and csv[10].label == bundled[10].label
