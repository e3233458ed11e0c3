"""NOTES.md of the published directory: how to use what was written, and how to scale out."""

from __future__ import annotations

from orchestrator.publish import bare_machine
from orchestrator.publish.deployment import BACKEND, SECRET_NAME, Deployment
from orchestrator.publish.kubernetes import BACKEND_PODS


def notes(deployment: Deployment) -> str:
    gpu = (
        "one NVIDIA GPU per backend replica (`nvidia.com/gpu: 1`; the cluster needs NVIDIA's "
        "device plugin)"
        if deployment.gpu
        else "no GPU (published with MOSHI_GPU=off)"
    )
    copy_lines = "\n".join(
        f"    cp -r {source} {bare_machine.DIRECTORY}/{name}"
        for name, source in bare_machine.PACKAGED.items()
    )
    return f"""# Deploying the PersonaPlex voice stack

Written by `./pants run orchestrator -- publish`; publish again rather than editing these files.
Images: `{deployment.backend_image}` and `{deployment.frontend_image}` (`./pants package ::`
builds them; push them where your machines can pull them, or publish with `--image-prefix`).
Browsers talk only to the frontend, which relays each conversation to a backend
(`MOSHI_PROXY=true`); the backend is never exposed. The backend gets {gpu}.

## Docker Compose (one machine)

    cp .env.example .env          # then fill in HF_TOKEN for the gated PersonaPlex weights
                                  # and MOSHI_API_KEY (any long random string) for the relay
    docker compose up -d          # or docker-compose 1.27+
    open http://localhost:{deployment.app_port}

The first start downloads the model into the volume `{deployment.cache_volume}` (the same one
`orchestrator up` uses); the frontend starts once the backend's health check passes.

## A GPU box without Docker (honcho)

`{bare_machine.DIRECTORY}/` runs the same two services as processes from the PEX files
`./pants package ::` makes; the machine needs CPython 3.11 (and the NVIDIA driver for a GPU:
the server PEX carries torch's CUDA libraries). Copy the directory and the PEX files over:

{copy_lines}
    cd {bare_machine.DIRECTORY} && cp .env.example .env   # then fill in HF_TOKEN, MOSHI_API_KEY
    python3 {bare_machine.HONCHO_PEX} start                # or an installed `honcho start`

The backend listens on 127.0.0.1 only; browsers use the frontend's relay on port
{deployment.app_port}. Each PEX unpacks itself once (PEX_ROOT) on its first start. honcho stops
both services when one of them exits (and on Ctrl-C or SIGTERM); to restart on failure and at
boot, run that `start` command as a systemd service with `WorkingDirectory` set to this directory.

## Kubernetes

    kubectl create secret generic {SECRET_NAME} --from-literal=HF_TOKEN=hf_... \\
        --from-literal=MOSHI_API_KEY="$(openssl rand -hex 32)"
    kubectl apply -k kubernetes/
    kubectl port-forward service/frontend {deployment.app_port}:{deployment.app_port}

With `MOSHI_API_KEY` set, the backend answers only requests that carry the key, which the
frontend's relay adds: nothing else on the network can hold a conversation with the model.

`{BACKEND}` is a StatefulSet of {deployment.backend_replicas} replica(s); each has its own
`{deployment.cache_size}` model cache claim, mounted at `{deployment.cache_path}`. Its startup
probe allows 30 minutes for the first download and load, then readiness and liveness probes
ask `/health` (503 until the model is ready). Put an Ingress (with TLS) in front of the
`frontend` service to serve users; the microphone needs HTTPS outside localhost.

## Scaling out

A backend replica serves several conversations at once: conversation slots that its GPU steps
together, one batched step per 80 ms frame. By default it takes as many slots as its GPU memory
holds beside the weights (PersonaPlex-7B in bf16: about 15.6 GiB of weights, about 1.5 GiB of
state per conversation, 3 GiB headroom), at most 16, and logs that plan in one line when it
starts; `MOSHI_MAX_SESSIONS` on the backend sets the number instead (a number that does not fit
stops the replica before it loads, saying how many would). Every step computes all slots, used or
not, so the number must also fit the frame: `bench/model_step.py` in the repository measures the
largest batch within 80 ms on a GPU. A conversation beyond the slots gets `busy` ("N of N",
close code 1013). The stack serves replicas x slots conversations.

More users than one replica holds need more replicas, and a way to send each new conversation to
a replica that has a free slot: a Kubernetes Service spreads connections at random, so a
conversation could land on a full replica while another is idle.

The frontend does the choosing. Publish with `--backend-replicas N`: the frontend is then given
every replica's own address in `MOSHI_WS_URLS` (`{BACKEND}-0.{BACKEND_PODS}`, ..., through the
headless service `{BACKEND_PODS}`). For each new conversation it asks every backend's `/health`
at once (2 s timeout) and relays to the least loaded one (`sessions.active` over
`sessions.capacity`) that has a free slot. When none is free, the conversation goes to a loaded
replica that answers `busy` (close code 1013); the page says so and tries again after 4 s. Two
conversations that start at the same instant may pick the same last free slot: the second is told
`busy` and finds another one on its retry.

To change the number of replicas, publish again with the new count and `kubectl apply -k` both
files: `kubectl scale` alone would change the StatefulSet but not the frontend's list.
"""
