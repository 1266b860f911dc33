"""check_dataset / check_root: one test per problem the deep check reports, the summary and the text."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from samlora.data.check import check_dataset, check_root
from samlora.data.coco import read_coco
from samlora.data.masks import read_mask_folder


def _check(datasets, tmp_path, annotations, images=None, **kwargs):
    images = images or [{"id": 1, "file_name": "a.png", "height": 20, "width": 30}]
    report = check_dataset(read_coco(datasets.write_coco(tmp_path, images, annotations)), **kwargs)
    return report


def _found(report, severity, needle):
    hits = [p for p in report.problems if p.severity == severity and needle in p.message]
    assert len(hits) == 1, report.format()
    return hits[0]


def _ann(ann_id, segmentation, **extra):
    return {"id": ann_id, "image_id": 1, "category_id": 1, "segmentation": segmentation, **extra}


def test_clean_data_summary(tmp_path, datasets):
    report = check_dataset(read_coco(datasets.standard_coco(tmp_path)), workers=2)
    assert report.ok and report.problems == []
    s = report.summary
    assert (s["images"], s["objects"], s["crowd_objects"], s["images_without_objects"]) == (3, 4, 1, 1)
    assert s["objects_per_image"] == {"min": 0, "mean": pytest.approx(4 / 3), "max": 2}
    assert s["classes"] == {"crack": 2, "pothole": 2}
    assert s["image_sizes"] == {"height": [20, 20, 20], "width": [30, 30, 30], "distinct": 1, "known": 3}
    area = s["mask_area_fraction"]
    assert list(area) == ["p0", "p5", "p25", "p50", "p75", "p95", "p100"]
    assert area["p100"] == pytest.approx(120 / 600)  # polygon 101: 10x12 pixels
    text = report.format()
    assert (
        text.index("images: 3")
        < text.index("classes: crack: 2, pothole: 2")
        < text.index("Problems: 0 error")
    )
    assert text.rstrip().endswith("OK")


def test_unreadable_image(tmp_path, datasets):
    images = [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "bad.jpg", "_no_file": True}]
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 garbage")
    report = _check(datasets, tmp_path, [], images)
    problem = _found(report, "error", "cannot read image")
    assert problem.record == "image id 2" and problem.file.endswith("bad.jpg") and not report.ok
    assert str(problem).count("Fix:") == 1 and ".." not in str(problem)


def test_empty_mask(tmp_path, datasets):
    report = _check(datasets, tmp_path, [_ann(17, [datasets.box_polygon(100, 100, 110, 110)])])
    problem = _found(report, "error", "empty mask")
    assert problem.record == "annotation id 17" and "a.png" in problem.message
    assert problem.file.endswith("_annotations.coco.json")


def test_mask_size_differs_from_image(tmp_path, datasets):
    images = [{"id": 1, "file_name": "a.png"}]  # no declared size: the reader cannot compare
    report = _check(datasets, tmp_path, [_ann(5, {"size": [10, 10], "counts": [100]})], images)
    problem = _found(report, "error", "10x10")
    assert (
        problem.record == "annotation id 5" and "image id 1" in problem.message and "20x30" in problem.message
    )


def test_bbox_outside_the_image(tmp_path, datasets):
    polygon = [datasets.box_polygon(24, 2, 40, 8)]
    report = _check(datasets, tmp_path, [_ann(3, polygon, bbox=[24, 2, 16, 6])])
    problem = _found(report, "warning", "reaches outside")
    assert problem.record == "annotation id 3" and "a.png" in problem.message and report.ok


def test_declared_size_differs_from_file(tmp_path, datasets):
    images = [{"id": 1, "file_name": "a.png", "height": 20, "width": 30, "_file_size": (25, 30)}]
    report = _check(datasets, tmp_path, [], images)
    problem = _found(report, "error", "declared width x height 30x20")
    assert problem.record == "image id 1" and "a.png" in problem.message and "30x25" in problem.message


def test_declared_size_of_exif_rotated_image_gets_a_hint(tmp_path, datasets):
    image = Image.fromarray(datasets.rgb())
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "r.jpg", exif=exif)
    images = [{"id": 1, "file_name": "r.jpg", "height": 20, "width": 30, "_no_file": True}]
    problem = _found(_check(datasets, tmp_path, [], images), "error", "declared width x height")
    assert "EXIF orientation 6" in problem.message


def test_deep_false_decodes_nothing(tmp_path, datasets):
    images = [{"id": 1, "file_name": "a.png", "height": 20, "width": 30}, {"id": 2, "file_name": "bad.png"}]
    (tmp_path / "bad.png").write_bytes(b"junk")
    anns = [_ann(1, [datasets.box_polygon(100, 100, 110, 110)])]
    report = _check(datasets, tmp_path, anns, [images[0], {**images[1], "_no_file": True}], deep=False)
    assert report.ok and report.summary["objects"] == 1 and report.summary["image_sizes"]["known"] == 1
    assert "quick" in report.format()


def _mask_report(datasets, root, masks, **options):
    datasets.write_mask_folder(root, masks)
    return check_dataset(read_mask_folder(root, **options), workers=1)


def test_multiclass_value_without_class_name(tmp_path, datasets):
    mask = np.zeros((20, 30), np.uint8)
    mask[1:4, 1:4], mask[6:9, 6:9] = 1, 5
    report = _mask_report(datasets, tmp_path, {"a": mask}, mask_kind="multiclass", class_names={1: "polyp"})
    problem = _found(report, "error", "mask value 5 has no class name")
    assert problem.file.endswith("masks/a.png") and problem.record == "image id a"


def test_binary_png_with_more_values(tmp_path, datasets):
    mask = datasets.two_blobs()
    mask[2, 2] = 100
    report = _mask_report(datasets, tmp_path, {"a": mask}, mask_kind="binary")
    problem = _found(report, "warning", "3 distinct values")
    assert problem.file.endswith("masks/a.png")


def test_all_black_mask_is_a_negative_image(tmp_path, datasets):
    empty = np.zeros((20, 30), np.uint8)
    report = _mask_report(datasets, tmp_path, {"a": empty, "b": datasets.two_blobs()})
    assert report.ok and report.problems == [], report.format()
    assert report.summary["images"] == 2 and report.summary["objects"] == 2


def test_mask_contradicting_the_detected_binary_type_is_an_error(tmp_path, datasets):
    """Auto-detection samples 16 masks; a later instance-valued mask must not lose objects quietly."""
    masks = {f"m{i:02d}": (datasets.two_blobs() > 0).astype(np.uint8) for i in range(40)}
    odd = masks["m01"].copy()
    odd[14:18, 2:6] = 2
    masks["m01"] = odd  # not among the sampled masks
    report = _mask_report(datasets, tmp_path, masks)
    problem = _found(report, "error", "3 distinct values (0, 1, 2)")
    assert problem.file.endswith("masks/m01.png") and problem.record == "image id m01"
    assert "data.mask_type" in problem.fix and not report.ok


def test_mask_folder_size_mismatch(tmp_path, datasets):
    datasets.write_mask_folder(tmp_path, {"a": datasets.two_blobs()})
    datasets.save(tmp_path / "masks" / "a.png", np.zeros((10, 10), np.uint8))
    problem = _found(check_dataset(read_mask_folder(tmp_path)), "error", "10x10")
    assert problem.file.endswith("a.png") and problem.record == "image id a"


def test_small_objects_dropped_are_counted(tmp_path, datasets):
    report = _mask_report(
        datasets, tmp_path, {"a": datasets.two_blobs(), "b": datasets.two_blobs()}, min_object_area=20
    )
    problem = _found(report, "warning", "2 object(s) smaller than min_object_area=20")
    assert report.summary["objects"] == 2 and report.summary["dropped_small_objects"] == 2 and problem


def test_category_without_objects(tmp_path, datasets):
    path = datasets.write_coco(tmp_path, [{"id": 1, "file_name": "a.png"}], [], [{"id": 0, "name": "super"}])
    problem = _found(check_dataset(read_coco(path)), "warning", "'super' has no object")
    assert problem.record == "category id 0"


def test_reader_problems_are_included_and_errors_come_first(tmp_path, datasets):
    anns = [_ann(1, [datasets.box_polygon(2, 2, 9, 9)], bbox=[15, 12, 3, 3]), _ann(2, [[1, 2, 3]])]
    report = _check(datasets, tmp_path, anns)
    assert [p.severity for p in report.problems] == ["warning", "error"]
    text = report.format()
    assert text.index("ERROR") < text.index("WARNING") and "NOT OK" in text and not report.ok


def test_workers_do_not_change_the_result(tmp_path, datasets):
    masks = {f"m{i}": datasets.two_blobs() for i in range(6)}
    datasets.write_mask_folder(tmp_path, masks)
    ds = read_mask_folder(tmp_path)
    assert check_dataset(ds, workers=1).summary == check_dataset(ds, workers=3).summary


def test_check_root_checks_every_split(tmp_path, datasets):
    datasets.standard_coco(tmp_path / "train")
    datasets.standard_coco(tmp_path / "valid")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "_annotations.coco.json").write_text("{broken")
    reports = check_root(tmp_path, workers=1)
    assert [r.summary["split"] for r in reports] == ["train", "valid", "test"]
    assert [r.ok for r in reports] == [True, True, False]
    assert "not valid JSON" in reports[2].problems[0].message and "test" in reports[2].format()
    only = check_root(tmp_path, splits=["val"], deep=False)
    assert len(only) == 1 and only[0].summary["split"] == "val" and only[0].ok


def test_unknown_mask_type_is_reported_once(tmp_path, datasets):
    mask = np.zeros((20, 30), np.uint8)
    mask[1:4, 1:4], mask[6:9, 6:9], mask[12:15, 12:15] = 1, 2, 3
    report = _mask_report(datasets, tmp_path, {"a": mask, "b": mask, "c": mask})
    assert len(report.errors) == 1 and "data.mask_type" in str(report.errors[0])
