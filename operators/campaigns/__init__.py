"""The campaign engine: campaigns, segments, journeys and rewards as data in ``config/``.

* :func:`load_campaigns` reads ``config/campaigns/*.yaml`` and ``config/templates/``,
  validates everything and compiles it (or raises :class:`ConfigError` listing every
  problem); :func:`check_config` returns the problems as lines, for
  ``pitboss check-config``.
* :class:`CampaignRules` runs a loaded configuration as a rule set of the player
  operator (``operators.engine.PlayerShard(rules=[CampaignRules(...)])``);
  :func:`load_campaign_rules` is both steps at once; :func:`swap_rules` replaces the
  rules between batches (hot reload).
* :func:`campaign_rows` gives the campaign columns of players.parquet.
"""

from pathlib import Path

from operators.campaigns.compiled import CampaignSet
from operators.campaigns.engine import CampaignRules
from operators.campaigns.errors import ConfigError
from operators.campaigns.loader import check_config, load_campaigns
from operators.campaigns.reload import swap_rules
from operators.campaigns.store import campaign_rows


def load_campaign_rules(config_dir: Path) -> CampaignRules:
    """The rule set running the configuration under ``config_dir`` (``ConfigError`` if
    it is invalid): ``CampaignRules(load_campaigns(config_dir))``."""
    return CampaignRules(load_campaigns(config_dir))


__all__ = [
    "CampaignRules",
    "CampaignSet",
    "ConfigError",
    "campaign_rows",
    "check_config",
    "load_campaign_rules",
    "load_campaigns",
    "swap_rules",
]
