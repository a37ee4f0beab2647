"""CloudEvents `type` values and the `source` of events tickwire itself emits."""

TRADE = "io.tickwire.trade.v1"
QUOTE = "io.tickwire.quote.v1"
TICKER_UPDATE = "io.tickwire.ticker.update.v1"
BAR = "io.tickwire.bar.v1"
SPECVERSION = "1.0"
PROCESSOR_SOURCE = "/tickwire/processor"
