"""The commands and manifests the README and the docs show work as shown: every
`imageprune ...` command parses with the real parser (no flag that does not exist, no value
it refuses), every path a command names exists, every `helm --set` names a chart value,
every resource named as kind/name is in the rendered manifests, and every YAML block parses
(an ImagePrunePolicy with the operator's and the node's parsers). A command shown failing
(a console block whose output starts with `Error:`) must fail these checks.

Which docs: testkit/docblocks.py. tests/k8s/test_samples.py applies every sample and every
policy the docs show to a real apiserver."""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
from collections.abc import Iterator, Mapping

import pytest
import yaml

from imageprune.agent import main as agent_main
from imageprune.api import policy
from imageprune.cli import flags
from imageprune.cli import main as cli_main
from imageprune.cluster import main as cluster_main
from imageprune.policy import selection
from testkit import binaries, docblocks

pytestmark = pytest.mark.unit

ROOT = binaries.REPO_ROOT
SHELL = {"sh", "bash", "console"}
SUBCOMMANDS = {"images", "prune", "operator", "agent"}
CHART = ROOT / "charts" / "imageprune"


@dataclasses.dataclass(frozen=True)
class Command:
    where: str
    tokens: list[str]
    copied: bool = True  # in a code block (run as is), not an inline mention
    fails: bool = False  # shown with an error as its output


def _tokens(line: str) -> list[str]:
    """The first command of a shell line: comments, pipes and `VAR=value` prefixes off."""
    tokens = shlex.split(line, comments=True)
    for stop in ("|", "&&", "||", ";"):
        if stop in tokens:
            tokens = tokens[: tokens.index(stop)]
    while tokens and re.fullmatch(r"[A-Z_]+=.*", tokens[0]):
        tokens = tokens[1:]
    return tokens


def commands() -> Iterator[Command]:
    for block in docblocks.blocks():
        if block.lang not in SHELL:
            continue
        lines = block.text.replace("\\\n", " ").splitlines()
        for number, line in enumerate(lines):
            if block.lang == "console":
                if not line.startswith("$ "):
                    continue  # output
                following = lines[number + 1] if number + 1 < len(lines) else ""
                tokens = _tokens(line[2:])
                yield Command(block.where, tokens, fails=following.startswith("Error:"))
            elif tokens := _tokens(line):
                yield Command(block.where, tokens)
    inline = re.compile(r"`(imageprune [^`]+)`")
    for doc in docblocks.DOCS:
        for match in inline.finditer(doc.read_text()):
            tokens = _tokens(match.group(1))
            if len(tokens) > 1 and (tokens[1] in SUBCOMMANDS or tokens[1].startswith("--")):
                yield Command(f"{doc.name} (inline)", tokens, copied=False)


# ---- checks: each returns the problems it finds ------------------------------------------


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    for action in parser._actions:
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _option_strings(sub)
    return found


def check_imageprune(command: Command) -> list[str]:
    args = command.tokens[1:]
    if args and args[0] in ("operator", "agent"):
        module = cluster_main if args[0] == "operator" else agent_main
        parser, args = module.build_parser(), args[1:]
    else:
        parser = cli_main.build_parser()
    known = _option_strings(parser)
    problems = [
        f"no flag {arg}" for arg in args if arg.startswith("-") and arg.split("=")[0] not in known
    ]
    if {"-h", "--help", "--version"} & set(args) or problems:  # they exit at once
        return problems
    try:
        parsed = parser.parse_args(args)
        if command.copied and args and args[0] in ("images", "prune"):
            flags.request_from_args(parsed)
    except SystemExit:
        return [f"{shlex.join(command.tokens)} does not parse"]
    except (flags.UsageError, ValueError) as error:
        return [f"{shlex.join(command.tokens)}: {error}"]
    return []


def _paths(tokens: list[str]) -> Iterator[str]:
    """Repository paths a command names."""
    for token in tokens:
        if re.match(r"(charts|deploy|hack|\.ci)/", token) or token.endswith(".sh"):
            yield token


def check_paths(command: Command) -> list[str]:
    return [
        f"{path}: no such file" for path in _paths(command.tokens) if not (ROOT / path).exists()
    ]


def _values() -> Mapping[str, object]:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert isinstance(values, Mapping)
    return values


def check_helm_values(command: Command) -> list[str]:
    problems = []
    for flag, setting in zip(command.tokens, command.tokens[1:], strict=False):
        if flag != "--set":
            continue
        node: object = _values()
        for key in setting.split("=", 1)[0].split("."):
            if not isinstance(node, Mapping) or key not in node:
                problems.append(f"--set {setting}: the chart has no value {key!r} there")
                break
            node = node[key]
    return problems


def _rendered() -> set[str]:
    names = set()
    for document in yaml.safe_load_all((ROOT / "deploy" / "imageprune.yaml").read_text()):
        if document:
            names.add(f"{document['kind'].lower()}/{document['metadata']['name']}")
    return names


def check_resources(command: Command) -> list[str]:
    aliases = {"deploy": "deployment", "ds": "daemonset"}
    problems = []
    for token in command.tokens:
        match = re.fullmatch(r"(daemonset|deployment|deploy|ds)/([a-z0-9-]+)", token)
        if match and f"{aliases.get(match[1], match[1])}/{match[2]}" not in _rendered():
            problems.append(f"{token}: not in deploy/imageprune.yaml")
    return problems


def _in_pod(command: Command) -> Command | None:
    """`kubectl exec POD -- imageprune ...`: the command run in the pod."""
    tokens = command.tokens
    if tokens[0] != "kubectl" or "exec" not in tokens or "--" not in tokens:
        return None
    inner = tokens[tokens.index("--") + 1 :]
    return dataclasses.replace(command, tokens=inner, copied=False) if inner else None


def problems(command: Command) -> list[str]:
    found = check_paths(command) + check_resources(command)
    if inner := _in_pod(command):
        found += problems(inner)
    if command.tokens[0] == "imageprune":
        found += check_imageprune(command)
    if command.tokens[0] == "helm":
        found += check_helm_values(command)
    return found


# ---- tests ---------------------------------------------------------------------------


COMMANDS = list(commands())


def test_the_docs_show_commands_of_every_kind() -> None:
    shown = {(command.tokens[0], command.copied) for command in COMMANDS}
    assert {("imageprune", True), ("imageprune", False), ("helm", True), ("bash", True)} <= shown
    assert any(command.fails for command in COMMANDS)


@pytest.mark.parametrize(
    "command", COMMANDS, ids=lambda command: f"{command.where} {' '.join(command.tokens)[:60]}"
)
def test_command(command: Command, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the docs' paths are relative to the repository
    found = problems(command)
    if command.fails:
        assert found, f"{command.where}: shown failing, yet every check passes"
    else:
        assert not found, f"{command.where}: {found}"


def test_a_wrong_flag_or_value_is_caught() -> None:
    # The checks themselves, on commands that must fail them.
    assert check_imageprune(Command("t", ["imageprune", "prune", "--unused", "7d"]))
    assert check_imageprune(Command("t", ["imageprune", "prune", "--unused-for", "seven"]))
    assert check_imageprune(Command("t", ["imageprune", "prune", "--disk-high", "80"]))
    assert check_imageprune(Command("t", ["imageprune", "agent", "--node", "x"]))
    assert check_paths(Command("t", ["kubectl", "apply", "-f", "deploy/samples/nope.yaml"]))
    assert check_helm_values(Command("t", ["helm", "install", "--set", "agent.nope=1"]))
    assert check_resources(Command("t", ["kubectl", "logs", "daemonset/nope"]))
    assert problems(Command("t", ["kubectl", "exec", "p", "--", "imageprune", "images", "--x"]))


@pytest.mark.parametrize(
    "block", [b for b in docblocks.blocks() if b.lang == "yaml"], ids=lambda block: block.where
)
def test_yaml_block(block: docblocks.Block) -> None:
    documents = [d for d in yaml.safe_load_all(block.text) if d is not None]
    assert documents
    for document in documents:
        if isinstance(document, Mapping) and document.get("kind") == selection.KIND:
            selection.selection_from_spec(selection.manifest_spec(block.text))
            policy.parse_spec(document["spec"])
