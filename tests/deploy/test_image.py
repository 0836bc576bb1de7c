"""The image, built logically (no Docker engine here): the Dockerfile's steps are replayed outside the
checkout — the build context filtered by .dockerignore, `pip install '.[postgres]'` as a wheel into a
fresh environment, the Dockerfile's ENV — and the installed `flexchain` then finds every service and
every schema. Without FLEXCHAIN_SCHEMAS_DIR it would not (the schemas are not in the wheel)."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from flexchain.catalog import SERVICES, all_messages
from flexchain.settings import PROJECT_ROOT


def _instructions() -> list[tuple[str, str]]:
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _ignored(rel: str, patterns: list[str]) -> bool:
    parts = rel.split("/")
    for pat in patterns:
        pat = pat.removeprefix("**/")
        for i in range(len(parts)):
            if fnmatch.fnmatch("/".join(parts[: i + 1]), pat) or fnmatch.fnmatch(parts[i], pat):
                return True
    return False


def test_dockerfile_runs_as_non_root_with_the_schemas_dir_set() -> None:
    ins = _instructions()
    users = [arg for op, arg in ins if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the final USER must not be root"
    assert re.fullmatch(r"\d+(:\d+)?", users[-1]), "a numeric USER lets Kubernetes verify runAsNonRoot"
    env = " ".join(arg for op, arg in ins if op == "ENV")
    assert "FLEXCHAIN_SCHEMAS_DIR=/app/schemas" in env and "FLEXCHAIN_HTTP_HOST=0.0.0.0" in env
    assert ("ENTRYPOINT", '["flexchain"]') in ins


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Replay COPY (from the .dockerignore-filtered context) and RUN pip install into a fresh venv."""
    root = tmp_path_factory.mktemp("image")
    app = root / "app"
    app.mkdir()
    patterns = [
        p.strip() for p in (PROJECT_ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    for op, arg in _instructions():
        if op != "COPY":
            continue
        *sources, dest = arg.split()
        for src in sources:
            path = PROJECT_ROOT / src
            assert path.exists(), f"COPY {src}: not in the build context"
            assert not _ignored(src, patterns), f"COPY {src}: excluded by .dockerignore"
            target = app / dest if dest not in ("./", ".") else app
            if path.is_dir():
                shutil.copytree(
                    path,
                    app / dest.strip("./"),
                    ignore=lambda d, names: [n for n in names if _ignored(os.path.relpath(Path(d, n), PROJECT_ROOT), patterns)],
                    dirs_exist_ok=True,
                )
            else:
                shutil.copy2(path, target / path.name if target.is_dir() else target)
    # RUN pip install '.[postgres]': the wheel pip builds from /app, installed into a new environment
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    wheels = root / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(app)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    site = Path(
        subprocess.check_output(
            [str(root / "venv/bin/python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    wheel = next(wheels.glob("flexchain-*.whl"))
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert inst.returncode == 0, inst.stderr
    # the `postgres` extra, as the wheel's metadata declares it (psycopg is not a dev dependency)
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    extra = [m.group(1).strip() for m in re.finditer(r"^Requires-Dist: (.+?); extra == \"postgres\"$", meta, re.M)]
    assert extra, "the wheel declares no `postgres` extra"
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(site), *extra], capture_output=True, text=True, check=False
    )
    assert inst.returncode == 0, inst.stderr
    # RUN ... rmtree(flexchain.tools): the tooling is not in the image
    if any(op == "RUN" and "import flexchain.tools as t" in arg and "rmtree" in arg for op, arg in _instructions()):
        shutil.rmtree(site / "flexchain/tools")
    # the other dependencies come from the project's venv, appended after the wheel
    (site / "zz-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root


def _run_in_image(root: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    ins = _instructions()
    image_env = {}
    for op, arg in ins:
        if op == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", arg):
                image_env[key] = value.replace("/app/", f"{root}/app/")
    image_env["FLEXCHAIN_DATA_DIR"] = str(root / "data")
    full = {"PATH": "/usr/bin:/bin", **image_env, **env}
    full = {k: v for k, v in full.items() if v != ""}
    return subprocess.run(
        [str(root / "venv/bin/python"), "-c", code], cwd=root, env=full, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_installed_image_finds_every_service_and_schema(image_root: Path) -> None:
    code = (
        "import flexchain, services, psycopg\n"
        "from flexchain.catalog import available_services, all_messages\n"
        "from flexchain.serde import Codec\n"
        f"assert {str(PROJECT_ROOT)!r} not in flexchain.__file__, flexchain.__file__\n"
        "print(','.join(available_services()))\n"
        "codec = Codec(all_messages())\n"  # loads every .avsc from FLEXCHAIN_SCHEMAS_DIR
        # the schema history is in the image too: a record of the first release's OrderShipped decodes
        "import io, json, os, struct\n"
        "from fastavro import parse_schema, schemaless_writer\n"
        "from flexchain.schemas import local_schema_id\n"
        "old = json.load(open(os.environ['FLEXCHAIN_SCHEMAS_DIR'] + '/history/order/OrderShipped.v1.avsc'))\n"
        "env = dict(event_id='e', event_type='OrderShipped', aggregate_id='o', aggregate_version=1, business_time=1,\n"
        "           correlation_id='o', causation_id=None, producer='order')\n"
        "buf = io.BytesIO(struct.pack('>bI', 0, local_schema_id(old)))\n"
        "buf.seek(5)\n"
        "schemaless_writer(buf, parse_schema(old), dict(envelope=env, order_id='o', tracking='t', skus=['mask']))\n"
        "assert codec.decode(buf.getvalue()).message.skus == ['mask']\n"
        "print(len(all_messages()))\n"
    )
    proc = _run_in_image(image_root, code)
    assert proc.returncode == 0, proc.stderr
    found, count = proc.stdout.split()
    expected = [s for s in SERVICES if (PROJECT_ROOT / "services" / s / "app.py").is_file()]
    assert found.split(",") == expected
    assert int(count) == len(all_messages()), "the image knows every message type of the checkout"


def test_without_the_schemas_dir_the_wheel_alone_cannot_decode(image_root: Path) -> None:
    """Negative control: the schemas are not in the wheel, the Dockerfile's ENV is what makes it work."""
    code = "from flexchain.catalog import all_messages\nfrom flexchain.serde import Codec\nCodec(all_messages())\n"
    proc = _run_in_image(image_root, code, FLEXCHAIN_SCHEMAS_DIR="")
    assert proc.returncode != 0 and ("FileNotFoundError" in proc.stderr or "No such file" in proc.stderr), proc.stderr


def test_the_image_carries_the_runtime_and_no_tooling(image_root: Path) -> None:
    """Issue 17: the local broker, demo, PKI, AsyncAPI and simulator (flexchain.tools) are not in the
    image, and `flexchain serve <service>` needs none of them: the CLI and every service's wiring import."""
    code = (
        "import importlib, sys\n"
        "from flexchain.catalog import PACKAGES\n"
        "import flexchain.cli\n"
        "for p in PACKAGES.values(): p.app()\n"
        "assert not [m for m in sys.modules if m.startswith('flexchain.tools')]\n"
        "try:\n"
        "    importlib.import_module('flexchain.tools.broker')\n"
        "except ModuleNotFoundError:\n"
        "    print('no tools')\n"
    )
    proc = _run_in_image(image_root, code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "no tools"
