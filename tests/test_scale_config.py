"""Configuration of the shared md upstream and the Redis bus: mistakes refused at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from webctp.config import ConfigError, load_config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[md]\nupstream = "many"\n', "must be one of 'session', 'shared'"),
        ("[md]\nrelease_grace_s = -1\n", "md.release_grace_s"),
        ("[bus]\npublish = true\n", "bus.publish needs bus.url"),
        ('[bus]\nurl = "redis://127.0.0.1:6379/0"\npublish = true\n', 'md.upstream = "shared"'),
        ('[server]\nmode = "md-edge"\n', "mode md-edge needs bus.url"),
        ('[bus]\nurl = "http://127.0.0.1:6379"\n', "bus.url: expected redis://"),
        ('[bus]\nurl = "redis://:pw@h/x"\n', "bus.url: db: not a number"),
        ('[bus]\nurl = "redis://h:99999"\n', "bus.url: bad port"),
        ('[bus]\nurl = "rediss://h?ssl_cert_reqs=maybe"\n', "bus.url: ssl_cert_reqs"),
        ('[bus]\nurl = "unix://"\n', "bus.url: unix:// needs"),
        ('[bus]\nurl = "redis://h"\nheartbeat_s = 5\nexpiry_s = 5\n', "bus.expiry_s"),
        ('[bus]\nurl = "redis://h"\ntimeout_s = 0\n', "bus.timeout_s"),
    ],
)
def test_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_config(path)


def test_feeder_and_edge_accepted(tmp_path: Path) -> None:
    feeder = tmp_path / "feeder.toml"
    feeder.write_text(
        '[md]\nupstream = "shared"\nuser_id = "viewer"\n'
        '[bus]\nurl = "redis://127.0.0.1:6379/0"\npublish = true\n'
    )
    cfg = load_config(feeder)
    assert cfg.md.upstream == "shared" and cfg.bus.publish
    edge = tmp_path / "edge.toml"
    edge.write_text('[server]\nmode = "md-edge"\n[bus]\nurl = "redis://127.0.0.1:6379/0"\n')
    assert load_config(edge).server.mode == "md-edge"
    assert load_config(None).md.upstream == "session"  # the default stays per-session
