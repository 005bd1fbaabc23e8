"""Custom Prefect blocks. `prefect block register -m blocks` registers every class exported here.

The hot store uses prefect-sqlalchemy's own `SqlAlchemyConnector` (registered by bootstrap too);
see `blocks.hot.hot_store_connector` for the settings → block mapping.
"""

from blocks.credentials import ProviderCredentials
from blocks.lake import LakeSettings

__all__ = ["LakeSettings", "ProviderCredentials"]
