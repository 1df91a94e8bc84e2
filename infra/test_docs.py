"""The docs agree with template.yaml (with monitoring.yaml, its nested application): every count they state of alarms, routes, parameters
and reserved concurrency is the template's, every alarm and parameter the template has is
explained in docs/deploy.md (and nothing the template lacks), every route in docs/api.md;
and their links resolve (infra/check_links.py). Run by `make lint`:
.venv/bin/python -m unittest discover -s infra -p 'test_*.py'
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import check_iam  # noqa: E402
import check_links  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Lambda keeps this many concurrent executions unreserved in every account.
UNRESERVED_MINIMUM = 100


def template() -> dict:
    """template.yaml with the resources of its nested applications (monitoring.yaml's alarms):
    the stack as deployed. The parameters are template.yaml's alone, the ones operators set."""
    from samtranslator.yaml_helper import yaml_parse

    path = os.path.join(ROOT, "template.yaml")
    stack = yaml_parse(check_links.read(path))
    for nested in check_iam.nested_templates(path, stack):
        stack["Resources"].update(yaml_parse(check_links.read(nested))["Resources"])
    return stack


def docs() -> dict[str, str]:
    """README.md and docs/*.md by their path in the repository."""
    return {
        os.path.relpath(path, ROOT): check_links.read(path)
        for path in check_links.markdown_files()
    }


def prose(text: str) -> str:
    return "\n".join(line for _, line, _ in check_links.prose_lines(text))


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end >= 0 else len(text)]


class Facts:
    def __init__(self, template: dict) -> None:
        resources = template["Resources"]
        self.alarms = sorted(n for n, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm")
        self.parameters = sorted(template["Parameters"])
        self.routes = sorted(
            f"{e['Properties']['Method']} {e['Properties']['Path']}"
            for r in resources.values()
            if r["Type"] == "AWS::Serverless::Function"
            for e in (r["Properties"].get("Events") or {}).values()
            if e["Type"] == "HttpApi"
        )
        self.reserved = sum(
            r["Properties"].get("ReservedConcurrentExecutions", 0)
            for r in resources.values()
            if r["Type"] == "AWS::Serverless::Function"
        )


def stated_counts(texts: dict[str, str], pattern: str) -> list[tuple[str, int]]:
    """Every number the docs' prose states before `pattern` (a phrase: "alarms")."""
    found = []
    for path, text in texts.items():
        for match in re.finditer(rf"\b(\d[\d,]*) {pattern}\b", prose(text)):
            found.append((f"{path}: {match.group(0)}", int(match.group(1).replace(",", ""))))
    return found


def count_slips(facts: Facts, texts: dict[str, str]) -> list[str]:
    slips = []
    for phrase, actual in [
        (r"(?:CloudWatch )?alarms", len(facts.alarms)),
        (r"(?:template )?parameters", len(facts.parameters)),
        (r"(?:HTTP |API |public )?routes", len(facts.routes)),
    ]:
        slips += [f"{where}: the template has {actual}" for where, n in stated_counts(texts, phrase) if n != actual]
    for where, n in stated_counts(texts, r"concurrent executions between them"):
        if n != facts.reserved:
            slips.append(f"{where}: the template reserves {facts.reserved}")
    quota = facts.reserved + UNRESERVED_MINIMUM
    for path, text in texts.items():
        for match in re.finditer(r"(?:concurrency )?quota of at least (\d[\d,]*)", prose(text)):
            if int(match.group(1).replace(",", "")) != quota:
                slips.append(f"{path}: {match.group(0)}: the template needs {quota}")
    return slips


def name_slips(facts: Facts, texts: dict[str, str]) -> list[str]:
    slips = []
    deploy = texts["docs/deploy.md"]
    alarms_section = section(deploy, "## 10. The alarms")
    slips += [f"docs/deploy.md section 10 does not explain {a}" for a in facts.alarms if f"`{a}`" not in alarms_section]
    for path, text in texts.items():
        for name in set(re.findall(r"`([A-Z][A-Za-z0-9]*Alarm)`", text)):
            if name not in facts.alarms and name not in ("AlarmsPublishToEncryptedTopic", "PutMetricAlarm"):
                slips.append(f"{path}: `{name}` is no alarm of the template")
    table = set(re.findall(r"^\| `([A-Za-z0-9]+)` \|", section(deploy, "## 3. Build and deploy"), re.M))
    slips += [f"docs/deploy.md's parameter table lacks {p}" for p in facts.parameters if p not in table]
    slips += [f"docs/deploy.md's parameter table names {p}, no parameter of the template" for p in table - set(facts.parameters)]
    api = texts["docs/api.md"]
    slips += [f"docs/api.md does not name the route {r}" for r in facts.routes if f"`{r}`" not in api]
    return slips


def workspace_crates() -> list[str]:
    cargo = check_links.read(os.path.join(ROOT, "Cargo.toml"))
    members = re.findall(r'^\s+"([^"]+)",$', cargo.split("[workspace]", 1)[1].split("]", 1)[0], re.M)
    return sorted(
        re.search(r'^name = "([^"]+)"', check_links.read(os.path.join(ROOT, m, "Cargo.toml")), re.M).group(1)
        for m in members
    )


def architecture_slips(template: dict, architecture: str) -> list[str]:
    functions = [n for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]
    return [f"docs/architecture.md does not name {name}" for name in workspace_crates() + functions if f"`{name}`" not in architecture]


def readme_numbers_not_in_performance(readme: str, performance: str, facts: Facts) -> list[str]:
    """Numbers of the README's prose and tables (not its commands, links or dates) that
    docs/performance.md does not state: each figure is stated once, there. The quota and the
    reservations are the template's, checked above."""
    checked = {str(facts.reserved), str(facts.reserved + UNRESERVED_MINIMUM), str(UNRESERVED_MINIMUM)}
    stated = set(re.findall(r"\d[\d,.]*\d|\d", performance))
    missing = []
    for _, _, line in check_links.prose_lines(readme):
        line = re.sub(r"\]\([^)]*\)", "]", line)  # link targets
        line = re.sub(r"\b(?:Python|JDK|CLI v)\s?\d[\d.]*\+?", "", line)  # versions required
        # Not the digits of a name (S3, p99, arm64).
        for number in re.findall(r"(?<![A-Za-z\d.,])(?:\d[\d,.]*\d|\d)", line):
            if number not in stated and number not in checked:
                missing.append(number)
    return missing


def long_cells(text: str, most: int = 40) -> list[str]:
    return [
        cell.strip()[:60]
        for _, line, _ in check_links.prose_lines(text)
        if line.lstrip().startswith("|")
        for cell in line.strip().strip("|").split("|")
        if len(cell.split()) > most
    ]


class TheDocsAgreeWithTheTemplate(unittest.TestCase):
    def test_the_readme_reads_in_one_go(self):
        readme = docs()["README.md"]
        self.assertLessEqual(len(readme.split()), 1500, "README.md is past 1,500 words")
        self.assertEqual(long_cells(readme), [], "README table cells past 40 words")
        self.assertIn("make demo", readme.split("\n## ", 1)[0])
        self.assertIn("make test", readme.split("\n## ", 1)[0])

    def test_every_number_of_the_readme_is_in_performance_md(self):
        texts = docs()
        self.assertEqual(readme_numbers_not_in_performance(texts["README.md"], texts["docs/performance.md"], Facts(template())), [])

    def test_the_architecture_names_every_crate_and_function(self):
        self.assertEqual(architecture_slips(template(), docs()["docs/architecture.md"]), [])

    def test_every_count_the_docs_state_is_the_templates(self):
        self.assertEqual(count_slips(Facts(template()), docs()), [])

    def test_every_alarm_parameter_and_route_is_documented_and_nothing_else(self):
        self.assertEqual(name_slips(Facts(template()), docs()), [])

    def test_the_docs_links_resolve(self):
        self.assertEqual(check_links.problems(), [])


class TheChecksCatchASlip(unittest.TestCase):
    """Each check fails on the slip it is for."""

    def facts(self) -> Facts:
        return Facts(
            {
                "Parameters": {"A": {}, "B": {}},
                "Resources": {
                    "OneAlarm": {"Type": "AWS::CloudWatch::Alarm"},
                    "Fn": {
                        "Type": "AWS::Serverless::Function",
                        "Properties": {
                            "ReservedConcurrentExecutions": 4,
                            "Events": {"Get": {"Type": "HttpApi", "Properties": {"Method": "GET", "Path": "/"}}},
                        },
                    },
                },
            }
        )

    def test_a_wrong_count_is_caught(self):
        facts = self.facts()
        self.assertEqual(count_slips(facts, {"x.md": "1 alarms, 2 parameters, 1 routes, a quota of at least 104"}), [])
        slips = count_slips(facts, {"x.md": "2 alarms, 3 template parameters, 2 routes, a quota of at least 149\n```\n9 alarms\n```"})
        self.assertEqual(len(slips), 4, slips)

    def test_a_missing_or_unknown_name_is_caught(self):
        facts = self.facts()
        good = {
            "docs/deploy.md": "## 3. Build and deploy\n| `A` | x |\n| `B` | y |\n## 10. The alarms\n`OneAlarm`\n",
            "docs/api.md": "`GET /`",
        }
        self.assertEqual(name_slips(facts, good), [])
        bad = dict(good, **{"README.md": "`GoneAlarm`", "docs/api.md": "no routes"})
        bad["docs/deploy.md"] = "## 3. Build and deploy\n| `A` | x |\n| `C` | y |\n## 10. The alarms\n"
        self.assertEqual(len(name_slips(facts, bad)), 5, name_slips(facts, bad))

    def test_a_readme_figure_not_in_performance_md_is_caught(self):
        facts = self.facts()
        readme = "| compute | 0.121 | 0.5 |\nS3, p99, Python 3.13, a quota of 104\n```\nmake demo 77\n```\n[x](a#b-9)"
        self.assertEqual(readme_numbers_not_in_performance(readme, "0.121 and 0.5", facts), [])
        self.assertEqual(readme_numbers_not_in_performance(readme + "\n1.86 s", "0.121 and 0.5", facts), ["1.86"])

    def test_a_broken_link_or_anchor_is_caught(self):
        with tempfile.TemporaryDirectory() as root:
            os.mkdir(os.path.join(root, "docs"))
            with open(os.path.join(root, "docs", "a.md"), "w") as f:
                f.write("# A\n## The `realty` CLI\n")
            with open(os.path.join(root, "README.md"), "w") as f:
                f.write(
                    "[ok](docs/a.md#the-realty-cli) [ok](https://example.com) `[x](nope.md)`\n"
                    "[bad](docs/b.md) [bad](docs/a.md#nope) [bad](../outside.md) [bad](file:///etc)\n"
                    "`../shared/reference/aws-limits.md`\n"
                )
            self.assertEqual(len(check_links.problems(root)), 5, check_links.problems(root))


if __name__ == "__main__":
    unittest.main()
