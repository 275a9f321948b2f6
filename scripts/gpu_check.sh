#!/usr/bin/env bash
# bash scripts/gpu_check.sh     The same as `make gpu-check`: on a machine with GPUs, one
# PASS/FAIL line per check (scripts/gpu_check.py says which), under 5 minutes.
cd "$(dirname "$0")/.." && exec make --no-print-directory gpu-check
