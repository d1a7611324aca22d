"""The example ACL (examples/mosquitto/acl) on a real mosquitto: each agent and Home Assistant
keep to their own topics."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from tests.mqtt_broker import MosquittoBroker

ACL = Path(__file__).parents[2] / "examples" / "mosquitto" / "acl"
USERS = {"box1": "pw1", "box2": "pw2", "homeassistant": "pw-ha", "spy": "pw-spy"}

pytestmark = pytest.mark.usefixtures("allow_sockets")


class Client:
    def __init__(self, port: int, user: str) -> None:
        self.received: queue.Queue[str] = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"acl-{user}")
        self.client.username_pw_set(user, USERS[user])
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, message: paho.MQTTMessage) -> None:
        self.received.put(message.topic)

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)[1]
        time.sleep(0.2)  # let the broker settle the subscription

    def publish(self, topic: str) -> None:
        self.client.publish(topic, b"{}", qos=1).wait_for_publish(5)

    def topics_seen(self, settle_s: float = 0.5) -> set[str]:
        time.sleep(settle_s)
        seen = set()
        while not self.received.empty():
            seen.add(self.received.get())
        return seen

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    with MosquittoBroker(tmp_path / "broker", users=USERS, acl_file=ACL) as running:
        yield running


def test_agents_write_only_their_own_tree_and_home_assistant_only_requests(
    broker: MosquittoBroker,
) -> None:
    clients = {user: Client(broker.port, user) for user in USERS}
    try:
        ha, box1, spy = clients["homeassistant"], clients["box1"], clients["spy"]
        ha.subscribe("sbms/#")
        box1.subscribe("sbms/box1/#")
        spy.subscribe("sbms/#")

        box1.publish("sbms/box1/state")  # its own: allowed
        box1.publish("sbms/box2/event")  # another box's: dropped by the broker
        clients["box2"].publish("sbms/box2/state")
        ha.publish("sbms/box1/cmd/mark_full")  # a request: allowed
        ha.publish("sbms/box2/announce")  # impersonating an agent: dropped
        ha.publish("sbms/box1/history/get")  # the back-fill request: allowed
        ha.publish("sbms/box1/history/result")  # impersonating the agent's answer: dropped
        box1.publish("sbms/box1/history/result")  # its own answer: allowed
        box1.publish("sbms/box2/history/result")  # another box's answer: dropped
        box1.publish("sbms/box1/history/get")  # a request is not the agent's to send: dropped

        assert ha.topics_seen() == {
            "sbms/box1/state",
            "sbms/box2/state",
            "sbms/box1/cmd/mark_full",
            "sbms/box1/history/get",
            "sbms/box1/history/result",
        }
        # An agent reads only its requests (it needs nothing else, not even its own state).
        assert box1.topics_seen(0.0) == {"sbms/box1/cmd/mark_full", "sbms/box1/history/get"}
        assert spy.topics_seen(0.0) == set()  # no ACL entry: reads nothing
    finally:
        for client in clients.values():
            client.close()
