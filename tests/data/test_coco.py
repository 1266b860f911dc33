"""COCO reading: ids, segmentation kinds, crowd, bbox, and every cheap problem; decode == annToMask."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from samlora.data.coco import read_coco
from samlora.data.decode import load_sample
from samlora.errors import DataError


def _only(problems, severity=None):
    chosen = [p for p in problems if severity is None or p.severity == severity]
    assert len(chosen) == 1, [str(p) for p in problems]
    return chosen[0]


def _one_image(datasets, tmp_path, annotations, categories=None, **image):
    entry = {"id": 1, "file_name": "a.png", "height": 20, "width": 30, **image}
    return read_coco(datasets.write_coco(tmp_path, [entry], annotations, categories))


def test_standard_file_ids_kinds_crowd_and_negatives(tmp_path, datasets):
    ds = read_coco(datasets.standard_coco(tmp_path))
    assert ds.problems == []
    assert ds.format == "coco" and ds.split == "train" and ds.annotation_file.name == "_annotations.coco.json"
    assert [im.image_id for im in ds.images] == [7, "img-b", 42]
    assert ds.category_names == {3: "crack", 10: "pothole"}
    by_id = {im.image_id: im for im in ds.images}
    assert by_id["img-b"].path == (tmp_path / "sub" / "b.png").resolve()
    assert by_id[42].objects == []  # kept as a negative
    objects = {o.ann_id: o for im in ds.images for o in im.objects}
    assert len(objects[102].segmentation) == 2
    assert isinstance(objects[103].segmentation["counts"], str)
    assert isinstance(objects[104].segmentation["counts"], list)
    assert objects[104].iscrowd and not objects[103].iscrowd
    assert objects[101].bbox_xyxy == (2.0, 3.0, 12.0, 15.0)
    assert objects[102].bbox_xyxy is None  # no bbox in the file: taken from the mask later


def test_decode_equals_ann_to_mask(tmp_path, datasets):
    path = datasets.standard_coco(tmp_path)
    coco = COCO(str(path))
    ds = read_coco(path)
    seen = set()
    for record in ds.images:
        sample = load_sample(record)
        assert sample.image.shape == (20, 30, 3)
        assert sample.masks.dtype == bool and sample.masks.shape == (len(record.objects), 20, 30)
        for mask, ann_id, crowd in zip(sample.masks, sample.ann_ids, sample.iscrowd):
            expected = coco.annToMask(coco.anns[ann_id]).astype(bool)
            np.testing.assert_array_equal(mask, expected)
            assert crowd == bool(coco.anns[ann_id].get("iscrowd", 0))
            seen.add(ann_id)
    assert seen == {101, 102, 103, 104}
    assert list(load_sample(ds.images[1]).category_ids) == [3, 10]


def test_any_image_and_category_ids(tmp_path, datasets):
    images = [{"id": i, "file_name": f"{i}.png"} for i in (900, 3, -5)] + [
        {"id": "x/y", "file_name": "s.png"}
    ]
    anns = [
        {"id": 1, "image_id": "x/y", "category_id": 0, "segmentation": [datasets.box_polygon(1, 1, 5, 5)]},
        {"id": "a", "image_id": -5, "category_id": 1000, "segmentation": [datasets.box_polygon(1, 1, 5, 5)]},
    ]
    ds = read_coco(
        datasets.write_coco(tmp_path, images, anns, [{"id": 0, "name": "z"}, {"id": 1000, "name": "k"}])
    )
    assert ds.problems == []
    assert [im.image_id for im in ds.images] == [900, 3, -5, "x/y"]
    assert [o.category_id for im in ds.images for o in im.objects] == [1000, 0]


def test_malformed_json_names_file_and_position(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"images": [\n  {"id": 1,, }\n]}')
    with pytest.raises(DataError, match=r"bad\.json.*line 2 column"):
        read_coco(path)


def test_not_a_coco_file(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="'images' list"):
        read_coco(path)


def test_missing_image_file_is_an_error_and_left_out(tmp_path, datasets):
    images = [{"id": 1, "file_name": "here.png"}, {"id": 2, "file_name": "gone.png", "_no_file": True}]
    anns = [{"id": 5, "image_id": 2, "category_id": 1, "segmentation": [datasets.box_polygon(1, 1, 5, 5)]}]
    ds = read_coco(datasets.write_coco(tmp_path, images, anns))
    problem = _only(ds.problems)
    assert problem.severity == "error" and problem.record == "image id 2"
    assert "gone.png" in problem.message and "left out" in problem.message
    assert problem.file.endswith("_annotations.coco.json")
    assert [im.image_id for im in ds.images] == [1]


def test_traversal_file_name_is_refused(tmp_path, datasets):
    root = tmp_path / "data"
    datasets.save(tmp_path / "secret.png", datasets.rgb())
    images = [{"id": 1, "file_name": "../secret.png"}, {"id": 2, "file_name": str(tmp_path / "secret.png")}]
    ds = read_coco(datasets.write_coco(root, images))
    assert ds.images == []
    assert [p.record for p in ds.errors] == ["image id 1", "image id 2"]
    for problem in ds.errors:
        assert (
            "file_name escapes the data root; a data set must not read files outside its folder"
            in problem.message
        )


def test_annotation_pointing_to_missing_image(tmp_path, datasets):
    anns = [{"id": 17, "image_id": "1", "category_id": 1, "segmentation": [datasets.box_polygon(1, 1, 5, 5)]}]
    ds = _one_image(datasets, tmp_path, anns)
    problem = _only(ds.problems)
    assert problem.severity == "error" and problem.record == "annotation id 17"
    assert "image id '1'" in problem.message and "types differ" in problem.message
    assert ds.images[0].objects == []


def test_duplicate_image_ids(tmp_path, datasets):
    images = [{"id": 4, "file_name": "a.png"}, {"id": 4, "file_name": "b.png"}]
    ds = read_coco(datasets.write_coco(tmp_path, images))
    problem = _only(ds.problems)
    assert problem.severity == "error" and problem.record == "image id 4" and "twice" in problem.message
    assert [im.file_name for im in ds.images] == ["a.png"]


def test_duplicate_annotation_ids(tmp_path, datasets):
    polygon = [datasets.box_polygon(1, 1, 5, 5)]
    anns = [{"id": 9, "image_id": 1, "category_id": 1, "segmentation": polygon} for _ in range(2)]
    ds = _one_image(datasets, tmp_path, anns)
    problem = _only(ds.problems)
    assert problem.severity == "error" and problem.record == "annotation id 9" and "twice" in problem.message


def test_unknown_category(tmp_path, datasets):
    anns = [{"id": 3, "image_id": 1, "category_id": 77, "segmentation": [datasets.box_polygon(1, 1, 5, 5)]}]
    ds = _one_image(datasets, tmp_path, anns)
    problem = _only(ds.problems)
    assert problem.severity == "error" and problem.record == "annotation id 3" and "77" in problem.message
    assert ds.images[0].objects == []


def test_category_id_given_as_text_names_the_type(tmp_path, datasets):
    anns = [{"id": 3, "image_id": 1, "category_id": "1", "segmentation": [datasets.box_polygon(1, 1, 5, 5)]}]
    problem = _only(_one_image(datasets, tmp_path, anns).problems)
    assert "'1'" in problem.message and "the types differ" in problem.message


def test_duplicate_category_ids(tmp_path, datasets):
    ds = _one_image(datasets, tmp_path, [], [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}])
    problem = _only(ds.problems)
    assert problem.severity == "error" and problem.record == "category id 1" and "twice" in problem.message
    assert ds.category_names == {1: "a"}


@pytest.mark.parametrize("polygon", [[1, 1, 5, 5], [1, 1, 5, 5, 9, 9], [3, 3, 3, 3, 3, 3, 3, 3]])
def test_degenerate_polygon(tmp_path, datasets, polygon):
    anns = [{"id": 8, "image_id": 1, "category_id": 1, "segmentation": [polygon]}]
    ds = _one_image(datasets, tmp_path, anns)
    problem = _only(ds.problems)
    assert problem.severity == "error" and problem.record == "annotation id 8"
    assert "degenerate polygon" in problem.message and "left out" in problem.message


def test_one_degenerate_part_of_a_multi_polygon_is_a_warning(tmp_path, datasets):
    anns = [
        {"id": 8, "image_id": 1, "category_id": 1, "segmentation": [datasets.box_polygon(1, 1, 5, 5), [1, 2]]}
    ]
    ds = _one_image(datasets, tmp_path, anns)
    assert _only(ds.problems).severity == "warning"
    assert ds.images[0].objects[0].segmentation == [datasets.box_polygon(1, 1, 5, 5)]


@pytest.mark.parametrize("segmentation", [None, [], {}])
def test_missing_segmentation(tmp_path, datasets, segmentation):
    ann = {"id": 12, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}
    if segmentation is not None:
        ann["segmentation"] = segmentation
    ds = _one_image(datasets, tmp_path, [ann])
    problem = _only(ds.problems)
    assert problem.severity == "error" and problem.record == "annotation id 12"
    assert "missing segmentation" in problem.message


def test_wrong_or_malformed_bbox_is_a_warning(tmp_path, datasets):
    polygon = [datasets.box_polygon(2, 2, 10, 10)]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": polygon, "bbox": [15, 12, 3, 3]},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": polygon, "bbox": [1, 2, "x"]},
        {"id": 3, "image_id": 1, "category_id": 1, "segmentation": polygon},
    ]
    ds = _one_image(datasets, tmp_path, anns)
    assert [(p.severity, p.record) for p in ds.problems] == [
        ("warning", "annotation id 1"),
        ("warning", "annotation id 2"),
    ]
    assert "does not match the mask's extent" in ds.problems[0].message
    assert [o.bbox_xyxy for o in ds.images[0].objects] == [None, None, None]


def test_rle_problems(tmp_path, datasets):
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": {"size": [10, 10], "counts": [100]}},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": {"size": [20, 30], "counts": [5, 5]}},
        {"id": 3, "image_id": 1, "category_id": 1, "segmentation": {"size": [20, 30], "counts": 17}},
    ]
    ds = _one_image(datasets, tmp_path, anns)
    assert [(p.severity, p.record) for p in ds.problems] == [
        ("error", f"annotation id {i}") for i in (1, 2, 3)
    ]
    assert "differs from the size of image id 1" in ds.problems[0].message
    assert "do not add up" in ds.problems[1].message
    assert ds.images[0].objects == []


def test_missing_annotations_list_and_categories(tmp_path, datasets):
    path = datasets.write_coco(tmp_path, [{"id": 1, "file_name": "a.png"}])
    data = json.loads(path.read_text())
    del data["annotations"]
    path.write_text(json.dumps(data))
    assert _only(read_coco(path).problems).severity == "warning"
    data["annotations"] = [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5]]}]
    del data["categories"]
    path.write_text(json.dumps(data))
    problem = _only(read_coco(path).problems)
    assert problem.severity == "error" and "'categories'" in problem.message


def test_image_root_and_data_root(tmp_path, datasets):
    root = tmp_path / "root"
    datasets.save(root / "images" / "a.png", datasets.rgb())
    path = datasets.write_coco(root / "annotations", [{"id": 1, "file_name": "a.png", "_no_file": True}])
    ds = read_coco(path, image_root=root / "images", data_root=root)
    assert ds.problems == [] and ds.images[0].path == (root / "images" / "a.png").resolve()
    assert ds.root == root
