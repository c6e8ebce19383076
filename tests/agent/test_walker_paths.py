"""The walker's folders on the way to a backed-up path."""

from __future__ import annotations

from pathlib import Path

from agent.scan.walker import DirTask, Walker


def walk(paths: list[Path]) -> tuple[list[DirTask], list[str]]:
    emitted: list[DirTask] = []
    errors: list[str] = []
    walker = Walker(lambda tree_id: (), lambda path, node, task: None, emitted.append,
                    on_error=errors.append)
    walker.walk(paths, None)
    return emitted, errors


def test_a_symlinked_folder_on_the_way_is_recorded_as_the_folder_it_leads_to(
        tmp_path: Path) -> None:
    (tmp_path / "real" / "inner").mkdir(parents=True)
    (tmp_path / "real" / "inner" / "a.txt").write_bytes(b"a")
    (tmp_path / "lnk").symlink_to(tmp_path / "real")
    emitted, errors = walk([tmp_path / "lnk" / "inner"])
    assert errors == []
    (on_the_way,) = [t for t in emitted if t.path == str(tmp_path / "lnk")]
    assert on_the_way.node is not None and on_the_way.node["type"] == "dir"
    assert on_the_way.node["inode"] == (tmp_path / "real").stat().st_ino


def test_a_file_on_the_way_is_named_as_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    _emitted, errors = walk([tmp_path / "file" / "below"])
    assert errors and "file" in errors[0]


def test_path_components_resolve_dot_and_dot_dot_by_name() -> None:
    from agent.scan.walker import path_components, source_path

    assert path_components(Path("/a/b/../c/./d")) == ["a", "c", "d"]
    assert source_path("/a/b/..") == Path("/a")
