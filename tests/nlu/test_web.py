"""POST /nlu/parse: Rasa's /model/parse shape, bearer key, 400 on bad input."""

from __future__ import annotations


def test_parse_answers_like_rasa(client, auth):
    response = client.post("/nlu/parse", json={"text": "wheres my parcel LM-10001??", "locale": "en"}, headers=auth)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["text"] == "wheres my parcel LM-10001??"
    assert body["intent"]["name"] == "track_order" and 0 < body["intent"]["confidence"] <= 1
    assert body["entities"][0] | {} == {"entity": "order_id", "value": "LM-10001", "start": 17, "end": 25,
                                         "confidence_entity": 1.0, "extractor": "lastmile"}
    assert body["intent_ranking"][0]["name"] == "track_order"
    assert body["language"] == "en"


def test_parse_needs_an_api_key(client):
    response = client.post("/nlu/parse", json={"text": "hi"})
    assert response.status_code == 401


def test_bad_json_and_missing_text_are_400(client, auth):
    bad = client.post("/nlu/parse", data="{not json", content_type="application/json", headers=auth)
    assert bad.status_code == 400 and "error" in bad.get_json()
    missing = client.post("/nlu/parse", json={"locale": "en"}, headers=auth)
    assert missing.status_code == 400 and missing.get_json()["details"] == {"field": "text"}
