#pragma once
// The transport address STUN and TURN carry (XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS) is the
// common one that net/ binds and sends to; these names keep the protocol code in its own words.
#include "common/address.hpp"

namespace kaiwa::stun {

using common::Address;
using common::AddressHash;
using common::Family;

}  // namespace kaiwa::stun
