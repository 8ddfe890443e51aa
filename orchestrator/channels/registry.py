"""One adapter per channel, chosen by configuration."""

from __future__ import annotations

from orchestrator.channels.base import Channel, ChannelAdapter


class ChannelRegistry:
    def __init__(self, adapters: dict[Channel, ChannelAdapter]) -> None:
        for channel, adapter in adapters.items():
            if adapter.channel != channel:
                raise ValueError(f"{type(adapter).__name__} serves {adapter.channel.value}, not {channel.value}")
        self._adapters = dict(adapters)

    def for_channel(self, channel: Channel | str) -> ChannelAdapter:
        return self._adapters[Channel(channel)]

    def provider_name(self, channel: Channel | str) -> str:
        return self.for_channel(channel).provider

    def __iter__(self):
        return iter(self._adapters.values())

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            await adapter.aclose()


def local_registry() -> ChannelRegistry:
    from orchestrator.channels.local import LocalEmailAdapter, LocalSmsAdapter, LocalWhatsAppAdapter

    return ChannelRegistry(
        {Channel.email: LocalEmailAdapter(), Channel.sms: LocalSmsAdapter(), Channel.whatsapp: LocalWhatsAppAdapter()}
    )
