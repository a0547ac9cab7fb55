"""POST /prompt's `number` beyond SQLite's 64-bit integers (found by the fuzz test)."""

from srv_helpers import image_graph


def test_huge_number_is_accepted_as_an_ordering_key(server):
    resp = server.post("/prompt", json={"prompt": image_graph(), "number": 2**70})
    assert resp.status_code == 200, resp.text
    resp = server.post("/prompt", json={"prompt": image_graph(), "number": 10**400})
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_prompt"
