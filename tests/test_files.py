"""The files a run writes (``jaxcv.files``): atomic, and as readable as any other file."""

import pytest

from jaxcv.files import replacing, write_json, write_text


def test_written_files_get_the_permissions_of_a_plain_open(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("x")
    for path in (write_text(tmp_path / "summary.md", "x"), write_json(tmp_path / "history.json", {"a": 1})):
        assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777, path


def test_a_block_that_raises_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = write_text(tmp_path / "config.json", "old")
    with pytest.raises(RuntimeError):
        with replacing(path) as f:
            f.write(b"half")
            raise RuntimeError("killed")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["config.json"]
