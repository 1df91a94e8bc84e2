"""infra/check_code_shape.py finds what it is for: a long file, a cycle between siblings."""

import contextlib
import io
import pathlib
import tempfile
import unittest

import check_code_shape


def crate(root, files):
    for name, text in files.items():
        path = root / "shared" / "demo" / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def problems(files):
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        crate(root, files)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = check_code_shape.main(root)
        return code, out.getvalue().splitlines()


class CodeShapeTest(unittest.TestCase):
    def test_layered_modules_pass(self):
        code, found = problems({
            "lib.rs": "pub mod a;\npub mod b;\n",
            "a.rs": "use crate::b::Thing;\n",
            "b.rs": "pub struct Thing;\n#[cfg(test)]\nmod tests {\n    use crate::a;\n}\n",
        })
        self.assertEqual((code, found), (0, []))

    def test_a_cycle_between_siblings_is_reported(self):
        code, found = problems({
            "lib.rs": "pub mod a;\npub mod b;\n",
            "a.rs": "use super::b::Thing;\npub struct Other;\n",
            "b/mod.rs": "pub struct Thing;\nmod c;\n",
            "b/c.rs": "use crate::a::Other;\n",
        })
        self.assertEqual(code, 1)
        self.assertEqual(len(found), 1)
        self.assertIn("import cycle in crate: a <-> b", found[0])

    def test_a_child_using_its_parent_is_no_cycle(self):
        code, found = problems({
            "lib.rs": "pub mod a;\n",
            "a/mod.rs": "mod child;\nuse child::X;\npub struct Y;\n",
            "a/child.rs": "use super::Y;\npub struct X;\n",
        })
        self.assertEqual((code, found), (0, []))

    def test_a_file_past_800_lines_of_non_test_code_is_reported(self):
        long = "const A: u8 = 0;\n" * 801
        code, found = problems({"lib.rs": "mod big;\nmod fine;\n", "big.rs": long,
                                "fine.rs": "const A: u8 = 0;\n" * 10 + "#[cfg(test)]\nmod tests {\n" + "\n" * 900 + "}\n"})
        self.assertEqual(code, 1)
        self.assertEqual(len(found), 1)
        self.assertIn("big.rs: 801 lines", found[0])


if __name__ == "__main__":
    unittest.main()
