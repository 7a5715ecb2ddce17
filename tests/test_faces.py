import os

import numpy as np
from PIL import Image

from jobs import embed
from pipeline.data.faces import crop_face
from pipeline.data.images import decode_image
from tests.conftest import IN_MEMORY, TINY


def test_a_real_face_is_cropped(genki_subset):
    folder = os.path.join(genki_subset, "smiling")
    image = decode_image(open(os.path.join(folder, sorted(os.listdir(folder))[0]), "rb").read())
    crop, found = crop_face(image)
    assert found
    assert crop.shape[0] * crop.shape[1] < image.shape[0] * image.shape[1]


def test_no_face_keeps_the_whole_image():
    image = np.full((80, 80, 3), 128, np.uint8)
    crop, found = crop_face(image)
    assert not found and crop is image


def test_embed_with_face_crop_lists_fallbacks_and_changes_the_key(faces_copy, tmp_path):
    blank = np.full((48, 48, 3), 200, np.uint8)
    from PIL import Image

    Image.fromarray(blank).save(faces_copy / "neutral" / "blank.png")
    argv = ["--data", str(faces_copy), *TINY, "--augment-copies", "0", "--cache-dir",
            str(tmp_path), *IN_MEMORY]
    plain = embed.run(argv)
    cropped = embed.run([*argv, "--face-crop"])
    assert cropped.manifest["cache_key"] != plain.manifest["cache_key"]
    assert cropped.manifest["config"]["face_crop"] is True
    no_face = {item["id"] for item in cropped.manifest["no_face"]}
    assert "neutral/blank.png" in no_face
    assert cropped.manifest["num_no_face"] == len(no_face)
    assert plain.manifest["num_no_face"] == 0
    images = sum(entry["images"] for entry in cropped.manifest["counts"].values())
    assert images == 25


def test_face_crop_is_safe_in_parallel_threads(genki_subset):
    from concurrent.futures import ThreadPoolExecutor

    folder = os.path.join(genki_subset, "smiling")
    images = [decode_image(open(os.path.join(folder, f), "rb").read())
              for f in sorted(os.listdir(folder))[:8]]
    serial = [crop_face(image)[0].shape for image in images]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda image: crop_face(image)[0].shape, images * 4))
    assert parallel == serial * 4


def test_fine_tune_dataset_crops_faces_in_parallel(genki_subset):
    from pipeline.data.images import load_image
    from pipeline.data.sources import open_source
    from pipeline.training.image_data import image_dataset

    refs = open_source(genki_subset).refs()
    batches = list(image_dataset(refs, 48, batch_size=8, face_crop=True))
    images = np.concatenate([b[0].numpy() for b in batches])
    expected = load_image(open(refs[0].path, "rb").read(), 48, face_crop=True)
    assert images.shape == (len(refs), 48, 48, 3)
    np.testing.assert_allclose(images[0], expected, atol=1e-3)


def test_face_crop_by_default_follows_the_data(genki_subset, faces, tmp_path):
    def run(data, *flags):
        return embed.run(["--data", data, *TINY, "--augment-copies", "0", "--cache-dir",
                          str(tmp_path), *IN_MEMORY, *flags]).manifest

    genki = run(genki_subset)
    assert genki["config"]["face_crop"] is True
    probe = genki["face_probe"]
    assert probe["sampled"] == 40 and probe["with_face"] >= 0.75 * 40 and probe["faces"]
    assert genki["size_probe"] is None  # --image-size 48 (TINY) decided it
    drawn = run(faces)  # the drawn faces: the cascade finds few of them
    assert drawn["config"]["face_crop"] is False and not drawn["face_probe"]["faces"]
    assert drawn["face_probe"]["with_face"] < 0.75 * drawn["face_probe"]["sampled"]
    forced_off = run(genki_subset, "--no-face-crop")
    assert forced_off["config"]["face_crop"] is False and forced_off["face_probe"] is None
    assert forced_off["cache_key"] != genki["cache_key"]
    assert run(genki_subset, "--face-crop")["cache_key"] == genki["cache_key"]


def test_a_face_probe_of_no_images_finds_no_faces():
    from pipeline.data.faces import probe_faces

    assert probe_faces([]) == {"sampled": 0, "with_face": 0, "share": 0.75, "faces": False}


def test_the_input_size_is_decided_on_the_face_crops(genki_subset):
    from pipeline.data.sources import open_source
    from pipeline.features.config import EmbedConfig
    from pipeline.features.embed_job import _decide_on_data

    config = EmbedConfig(data=genki_subset, weights=None)
    decided, face_probe, size_probe = _decide_on_data(config, open_source(genki_subset))
    whole = [min(Image.open(os.path.join(genki_subset, name, file)).size)
             for name in ("not_smiling", "smiling")
             for file in os.listdir(os.path.join(genki_subset, name))]
    assert face_probe["faces"] and decided.face_crop is True
    assert size_probe["sampled"] == 40 and size_probe["median_short_side"] < np.median(whole)
    assert decided.image_size == size_probe["image_size"] == 224
