#!/usr/bin/python3
"""A GStreamer webrtcbin publisher (Debian's gstreamer1.0-plugins-bad), for the SFU's end-to-end test.

Sends a live test pattern (VP8) and a sine tone (Opus), sendonly, one BUNDLE'd transport. The WHIP exchange is done
by the test, not here (this process may run in a network namespace that cannot reach kaiwa's HTTP port): the
offer, once ICE gathering is complete, is printed to stdout as one JSON line {"offer": sdp}; the answer is read from
stdin as one JSON line {"answer": sdp}. Then it publishes for the given number of seconds, printing
{"state": ...} lines as webrtcbin's connection state changes, and exits 0 (1 on a GStreamer error).

    gst_whip_publisher.py SECONDS
"""
import json
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

PIPELINE = (
    "webrtcbin name=w bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
    "! vp8enc deadline=1 keyframe-max-dist=60 target-bitrate=300000 ! rtpvp8pay pt=96 "
    "! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! w. "
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111 "
    "! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w. "
)


def emit(obj):
    print(json.dumps(obj), flush=True)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    Gst.init(None)
    pipeline = Gst.parse_launch(PIPELINE)
    webrtc = pipeline.get_by_name("w")
    loop = GLib.MainLoop()
    result = {"rc": 0}

    def on_offer(promise, _):
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def on_negotiation_needed(element):
        # Publish only: every transceiver sends and receives nothing.
        for i in range(8):
            t = element.emit("get-transceiver", i)
            if t is None:
                break
            t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        element.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer, None))

    def read_answer():
        line = sys.stdin.readline()
        if not line:
            GLib.idle_add(loop.quit)
            return
        sdp_text = json.loads(line)["answer"]
        _, sdp = GstSdp.SDPMessage.new_from_text(sdp_text)
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        GLib.idle_add(lambda: webrtc.emit("set-remote-description", answer, Gst.Promise.new()) and False)

    def on_gathering(element, _):
        if element.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            return
        local = element.get_property("local-description")
        emit({"offer": local.sdp.as_text()})
        threading.Thread(target=read_answer, daemon=True).start()

    def on_state(element, _):
        emit({"state": element.get_property("connection-state").value_nick})

    def on_message(_, message):
        if message.type == Gst.MessageType.ERROR:
            err, debug = message.parse_error()
            emit({"error": f"{err.message} ({debug})"})
            result["rc"] = 1
            loop.quit()

    webrtc.connect("on-negotiation-needed", on_negotiation_needed)
    webrtc.connect("notify::ice-gathering-state", on_gathering)
    webrtc.connect("notify::connection-state", on_state)
    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    pipeline.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    return result["rc"]


if __name__ == "__main__":
    sys.exit(main())
