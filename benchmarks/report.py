"""The table printed at the end of a run (the same rows as the JSON)."""

from __future__ import annotations


def _num(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if unit in ("tok/s", "req/s") or abs(value) >= 1000:
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"
    if unit == "MB":
        return f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.3f}x"


def format_table(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"llmux benchmarks ({result['mode']}) {result['started']}",
        f"machine: {m['cpu_model']}, {m['cpu_cores']} cores ({m['cpu_cores_usable']} usable), "
        f"{m['memory_gb']} GB, GPU: {', '.join(m['gpus']) or 'none'}",
        f"load average start {m['load_average']} end {m.get('load_average_end')}; "
        f"Python {m['python']}, " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
        "",
    ]
    lines[-1:-1] = _settings(result["sections"])
    if result["mode"] == "smoke":
        lines.insert(-1, "smoke run: tiny N and a tiny model; figures are not meaningful and "
                         "targets are not judged")
    header = ("section", "metric", "llmux", "reference", "ratio", "target", "met", "vs / note")
    rows = []
    for name, section in result["sections"].items():
        if section.get("skipped"):
            rows.append((name, "(skipped)", "-", "-", "-", "-", "-", section["skipped"]))
        if section["data"].get("error"):
            rows.append((name, "(failed)", "-", "-", "-", "-", "-", section["data"]["error"]))
        for r in section["rows"]:
            unit = r["unit"]
            met = "-" if r["ok"] is None else ("yes" if r["ok"] else "NO")
            vs = r["reference_name"] + (f"; {r['note']}" if r["note"] else "")
            rows.append((name, f"{r['metric']} [{unit}]" if unit else r["metric"],
                         _num(r["llmux"], unit), _num(r["reference"], unit), _ratio(r["ratio"]),
                         r["target"] or "-", met, vs))
    widths = [max(len(str(x[i])) for x in [header, *rows]) for i in range(len(header) - 1)]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths)) + "  {}"
    lines.append(fmt.format(*header))
    lines.append(fmt.format(*("-" * w for w in widths), "-" * 8))
    lines += [fmt.format(*row) for row in rows]
    lines += _breakdown(result["sections"])
    return "\n".join(lines)


def _settings(sections: dict) -> list[str]:
    """What each llama.cpp target ran with, as its process started (llamacpp section)."""
    settings = sections.get("llamacpp", {}).get("data", {}).get("settings") or {}
    return [f"llamacpp {way}: " + ", ".join(f"{k} {v}" for k, v in s.items())
            for way, s in settings.items()]


def _breakdown(sections: dict) -> list[str]:
    """Where llmux's time to first token goes, beside the model's own work (llamacpp)."""
    b = sections.get("llamacpp", {}).get("data", {}).get("ttft_breakdown")
    if not b:
        return []
    own = b.get("model_work", {})
    parts = [f"{k[6:-3]} {v:.2f}" for k, v in b.items() if k.startswith("llmux_")]
    return ["", "llamacpp time to first token, ms (means; llmux's phases from its "
            "llmux_chat_phase_seconds metric):",
            "  llmux: " + ", ".join(parts),
            "  the model's own work (worker, median): "
            + ", ".join(f"{k} {v:.2f}" for k, v in own.items())]
