"""docs/architecture.md's crate graph is the one `cargo metadata` gives today."""

import unittest

import crate_graph


class CrateGraphTest(unittest.TestCase):
    def test_the_docs_graph_is_current(self):
        doc = crate_graph.current_block(crate_graph.DOC.read_text())
        self.assertIsNotNone(doc, "docs/architecture.md has no crate-graph markers")
        self.assertEqual(
            doc,
            crate_graph.block(crate_graph.metadata()),
            "the crate graph changed: run `python3 infra/crate_graph.py --write`",
        )

    def test_the_model_and_the_peers_depend_on_no_aws_or_function_crate(self):
        meta = crate_graph.metadata()
        domain = {"realty-model", "realty-sources", "realty-poller", "realty-metrics",
                  "realty-alerts", "realty-api"}
        for p in meta["packages"]:
            if p["name"] not in domain:
                continue
            for d in p["dependencies"]:
                if d.get("kind") is not None:
                    continue
                self.assertFalse(d["name"].startswith("aws"), f"{p['name']} -> {d['name']}")
                self.assertNotIn(d["name"], {"realty-aws", "realty-lake", "lambda_runtime"},
                                 f"{p['name']} -> {d['name']}")


if __name__ == "__main__":
    unittest.main()
