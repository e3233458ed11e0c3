"""The orchestrator's command line: its commands, and the options that are stack settings."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator import events
from orchestrator.publish.deployment import DEFAULT_IMAGE_PREFIX
from orchestrator.secret_store import KNOWN_SECRETS
from orchestrator.settings import (
    CONFIG_FILE_VARIABLE,
    BackendMode,
    EngineChoice,
    GpuMode,
    QuantizeMode,
)

EPILOG = """\
Every option can also come from an environment variable (shown in brackets) or a TOML config
file (--config, or PERSONAPLEX_CONFIG) whose keys are those variables, e.g. `moshi_port = 9000`.
Precedence: option > environment > config file > default. HF_TOKEN comes from the environment
or from `orchestrator secrets set HF_TOKEN` (stored in ~/.config/personaplex/secrets.toml, 0600).
"""


def _settings_options() -> argparse.ArgumentParser:
    # SUPPRESS: an option not given leaves no attribute, so the environment and the config
    # file are not overridden by argparse defaults (and subcommands do not reset top-level ones).
    parser = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = parser.add_argument_group("stack configuration")
    add = group.add_argument
    add(
        "--config",
        dest="config_file",
        type=Path,
        metavar="FILE",
        help=f"TOML settings file [{CONFIG_FILE_VARIABLE}]",
    )
    add("--project", help="name of this stack's containers and state [PERSONAPLEX_PROJECT]")
    add(
        "--backend",
        choices=[m.value for m in BackendMode],
        help="where the backend runs; auto: Docker when an engine answers [MOSHI_BACKEND]",
    )
    add("--backend-pex", type=Path, metavar="PEX", help="prebuilt server PEX [MOSHI_BACKEND_PEX]")
    add("--moshi-base-image", metavar="IMAGE", help="base of the backend image [MOSHI_BASE_IMAGE]")
    add(
        "--frontend-base-image",
        metavar="IMAGE",
        help="base of the frontend image (--prod) [FRONTEND_BASE_IMAGE]",
    )
    add(
        "--prod",
        action=argparse.BooleanOptionalAction,
        help="run the frontend as a container too, without reload [PERSONAPLEX_PROD, off]",
    )
    add("--frontend-pex", type=Path, metavar="PEX", help="prebuilt app PEX (--prod) [FRONTEND_PEX]")
    add("--moshi-port", type=int, metavar="PORT", help="backend port [MOSHI_PORT, 8998]")
    add("--app-port", type=int, metavar="PORT", help="frontend port [APP_PORT, 8010]")
    add("--app-host", metavar="ADDRESS", help="frontend bind address [APP_HOST, 127.0.0.1]")
    add(
        "--publish-host",
        metavar="ADDRESS",
        help="host address the backend is published on [MOSHI_PUBLISH_HOST, 127.0.0.1]",
    )
    add("--gpu", dest="moshi_gpu", choices=[g.value for g in GpuMode], help="[MOSHI_GPU, auto]")
    add(
        "--engine",
        dest="moshi_engine",
        choices=[e.value for e in EngineChoice],
        help="[MOSHI_ENGINE]",
    )
    add(
        "--hf-repo",
        dest="moshi_hf_repo",
        help="model hub repository or directory; default: the engine's own [MOSHI_HF_REPO]",
    )
    add(
        "--ssl", dest="moshi_use_ssl", action=argparse.BooleanOptionalAction, help="[MOSHI_USE_SSL]"
    )
    add(
        "--cpu-offload",
        dest="moshi_cpu_offload",
        action=argparse.BooleanOptionalAction,
        help="[MOSHI_CPU_OFFLOAD]",
    )
    add(
        "--quantize",
        dest="moshi_quantize",
        choices=[q.value for q in QuantizeMode],
        help="the LM's weights: bf16 as published, int8 or fp8 (half the memory) [MOSHI_QUANTIZE]",
    )
    add(
        "--persistent",
        action=argparse.BooleanOptionalAction,
        help="keep the backend container across runs and reuse it [MOSHI_PERSISTENT, on]",
    )
    add("--hf-cache-volume", metavar="VOLUME", help="model cache volume [HF_CACHE_VOLUME]")
    add(
        "--health-timeout",
        dest="health_timeout_s",
        type=float,
        metavar="SECONDS",
        help="per service [PERSONAPLEX_HEALTH_TIMEOUT_S, 600]",
    )
    add("--repo-root", type=Path, metavar="DIR", help="[PERSONAPLEX_REPO_ROOT, .]")
    add(
        "--dashboard",
        action=argparse.BooleanOptionalAction,
        help="serve the dashboard on loopback during `up` [PERSONAPLEX_DASHBOARD, on]",
    )
    add(
        "--dashboard-port",
        type=int,
        metavar="PORT",
        help="[PERSONAPLEX_DASHBOARD_PORT, 15000]",
    )
    add(
        "--telemetry",
        action=argparse.BooleanOptionalAction,
        help="receive the services' OTLP traces, metrics and logs for the dashboard "
        "[PERSONAPLEX_TELEMETRY, on]",
    )
    add(
        "--otlp-port",
        type=int,
        metavar="PORT",
        help="the OTLP/HTTP receiver's port; default 4318, or a free one when that is taken "
        "[PERSONAPLEX_OTLP_PORT]",
    )
    return parser


def command_parser() -> argparse.ArgumentParser:
    options = _settings_options()
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="PersonaPlex voice stack orchestrator (the Aspire AppHost's replacement).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[options],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=[options])

    command("up", "start the stack, gate on health, relay logs until Ctrl-C (the default)")
    down = command("down", "stop everything of the project, persistent container included")
    down.add_argument(
        "--volumes",
        action="store_true",
        help="also remove the model cache volume and the telemetry history",
    )
    command("status", "show what runs, whether it is healthy, and where")
    logs = command("logs", "print the last lines of a service (or of all)")
    logs.add_argument("service", nargs="?", choices=[events.BACKEND, events.FRONTEND])
    logs.add_argument("--tail", type=int, default=100, help="lines per service (default 100)")
    command("build", "build the backend image (with --prod, the frontend image too)")
    command("config", "print the resolved configuration (secrets masked)")
    publish = command(
        "publish", "write a docker compose file and Kubernetes manifests for deployment"
    )
    publish.add_argument(
        "--output", type=Path, default=Path("dist/deploy"), help="directory (default dist/deploy)"
    )
    publish.add_argument(
        "--image-prefix",
        default=DEFAULT_IMAGE_PREFIX,
        help=f"registry and namespace of the images (default {DEFAULT_IMAGE_PREFIX})",
    )
    publish.add_argument(
        "--image-tag", help="tag of both images (default: APP_VERSION in pants.toml)"
    )
    publish.add_argument(
        "--backend-replicas",
        type=int,
        default=1,
        help="backend replicas in Kubernetes; the frontend picks a free one (default 1)",
    )
    publish.add_argument(
        "--cache-size", default="50Gi", help="model cache claim per backend replica (default 50Gi)"
    )
    telemetry = command("telemetry", "manage the telemetry history of the last runs")
    telemetry_actions = telemetry.add_subparsers(
        dest="telemetry_action", metavar="ACTION", required=True
    )
    telemetry_actions.add_parser(
        "clear", help="remove the stored history (not while `up` of the project runs)"
    )
    secrets = command("secrets", "store a secret in the user's secrets file")
    actions = secrets.add_subparsers(dest="secrets_action", metavar="ACTION", required=True)
    setter = actions.add_parser("set", help="read the value from stdin (not echoed) and store it")
    setter.add_argument("name", choices=KNOWN_SECRETS)
    return parser


def setting_options(argv: Sequence[str]) -> dict[str, Any]:
    """The stack settings given as options: what the settings parser alone finds in argv
    (options not given leave no attribute, so they do not hide the environment)."""
    given, _ = _settings_options().parse_known_args(argv)
    return vars(given)
