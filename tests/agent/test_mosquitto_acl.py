"""The example broker setup (examples/mosquitto/: the ACL and the listener options of
sbms.conf) on a real mosquitto: each agent and Home Assistant keep to their own topics, and no
user can take over an agent's session, pose as a box or answer on a box's behalf.

No sleeps: a subscription is in place when its SUBACK arrived, and a client has received
everything routed to it before its own "fence" (a QoS 1 publish whose PUBACK it waits for:
the broker answers a client's packets in order, after the deliveries it queued before)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from tests.helpers.mqtt_broker import MosquittoBroker

EXAMPLES = Path(__file__).parents[2] / "examples" / "mosquitto"
ACL = EXAMPLES / "acl"
USERS = {"box1": "pw1", "box2": "pw2", "homeassistant": "pw-ha", "spy": "pw-spy"}
# Lines of sbms.conf that are about this machine (port, files) rather than policy.
MACHINE_LINES = ("listener", "password_file", "acl_file")
WAIT_S = 30.0  # a hang guard only: every wait ends on an event

pytestmark = pytest.mark.usefixtures("allow_sockets")


def example_options() -> list[str]:
    lines = (EXAMPLES / "sbms.conf").read_text(encoding="utf-8").splitlines()
    return [
        line
        for line in lines
        if line.strip() and not line.startswith("#") and not line.startswith(MACHINE_LINES)
    ]


class Client:
    def __init__(
        self, port: int, user: str, *, client_id: str | None = None, will: str | None = None
    ) -> None:
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.disconnects = 0
        self._connected = threading.Event()
        self._subscribed: dict[int, threading.Event] = {}
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=client_id or f"acl-{user}"
        )
        self.client.username_pw_set(user, USERS[user])
        if will is not None:
            self.client.will_set(will, b"offline", qos=1, retain=True)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda *_args: self._connected.set()
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._connected.wait(WAIT_S), f"{user} did not connect"

    def _on_message(self, _client: Any, _userdata: Any, message: paho.MQTTMessage) -> None:
        self.received.put((message.topic, message.payload))

    def _on_disconnect(self, *_args: Any) -> None:
        self.disconnects += 1

    def _on_subscribe(self, _client: Any, _userdata: Any, mid: int, *_rest: Any) -> None:
        self._subscribed.setdefault(mid, threading.Event()).set()

    def subscribe(self, topic: str) -> None:
        _, mid = self.client.subscribe(topic, qos=1)
        assert self._subscribed.setdefault(mid, threading.Event()).wait(WAIT_S)

    def publish(self, topic: str, payload: bytes = b"{}", *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(WAIT_S)
        assert info.is_published(), f"no PUBACK for {topic}"

    def topics_seen(self) -> set[str]:
        """Everything delivered so far (the fence makes "so far" mean everything routed)."""
        self.publish("fence")
        seen = set()
        while not self.received.empty():
            seen.add(self.received.get()[0])
        return seen

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    with MosquittoBroker(
        tmp_path / "broker", users=USERS, acl_file=ACL, options=example_options()
    ) as running:
        yield running


@pytest.fixture
def clients(broker: MosquittoBroker) -> Iterator[dict[str, Client]]:
    connected = {user: Client(broker.port, user) for user in USERS}
    try:
        yield connected
    finally:
        for client in connected.values():
            client.close()


def test_the_example_listener_ties_client_ids_to_users() -> None:
    assert "use_username_as_clientid true" in example_options()
    assert "allow_anonymous false" in example_options()


def test_agents_write_only_their_own_tree_and_home_assistant_only_requests(
    clients: dict[str, Client],
) -> None:
    ha, box1, box2, spy = (clients[user] for user in ("homeassistant", "box1", "box2", "spy"))
    ha.subscribe("sbms/#")
    box1.subscribe("sbms/box1/#")
    spy.subscribe("sbms/#")

    box1.publish("sbms/box1/state")  # its own: allowed
    box1.publish("sbms/box2/event")  # another box's: dropped by the broker
    box2.publish("sbms/box2/state")
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
    assert box1.topics_seen() == {"sbms/box1/cmd/mark_full", "sbms/box1/history/get"}
    assert spy.topics_seen() == set()  # no ACL entry: reads nothing


def test_home_assistant_cannot_pose_as_a_box_or_a_device(clients: dict[str, Client]) -> None:
    """The agent patterns (sbms/%u/...) apply to Home Assistant's user too: without the deny
    lines it could publish a retained announce for a box named like itself."""
    ha, box1 = clients["homeassistant"], clients["box1"]
    ha.subscribe("sbms/#")
    ha.subscribe("homeassistant/#")

    for suffix in ("announce", "state", "status", "config", "event", "reply/x"):
        ha.publish(f"sbms/homeassistant/{suffix}", retain=True)
    ha.publish("homeassistant/device/box1/config", retain=True)  # discovery for a box
    ha.publish("homeassistant/device/homeassistant/config", retain=True)
    ha.publish("homeassistant/status", b"online")  # its birth message: allowed
    box1.publish("homeassistant/device/box1/config")  # the box's own discovery: allowed

    assert ha.topics_seen() == {"homeassistant/status", "homeassistant/device/box1/config"}


def test_replies_only_below_the_agents_own_reply_tree(clients: dict[str, Client]) -> None:
    ha, box1 = clients["homeassistant"], clients["box1"]
    ha.subscribe("sbms/#")
    box1.publish("sbms/box1/reply/ha/42")  # its own reply tree: allowed
    box1.publish("sbms/box2/reply/ha/42")  # another box's: dropped
    assert ha.topics_seen() == {"sbms/box1/reply/ha/42"}


def test_no_user_can_take_over_an_agents_session(broker: MosquittoBroker) -> None:
    """With the agent's default client id, another user used to knock the agent offline
    (its last will fired on each takeover). The broker now names each client by its user."""
    ha = Client(broker.port, "homeassistant")
    box1 = Client(broker.port, "box1", client_id="sbms-agent-box1", will="sbms/box1/status")
    try:
        ha.subscribe("sbms/box1/status")
        # Another user with the agent's client id, or with its user name as client id.
        for attempt, client_id in enumerate(("sbms-agent-box1", "box1", "sbms-agent-box1")):
            intruder = Client(broker.port, "spy", client_id=client_id)
            intruder.close()
            box1.publish("sbms/box1/status", f"online {attempt}".encode())
        assert box1.disconnects == 0
        delivered = [ha.received.get(timeout=WAIT_S) for _ in range(3)]
        assert [payload for _, payload in delivered] == [b"online 0", b"online 1", b"online 2"]
        assert "offline" not in {payload.decode() for _, payload in delivered}
    finally:
        ha.close()
        box1.close()
