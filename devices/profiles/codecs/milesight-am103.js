// Milesight AM103 uplink codec, LoRaWAN Payload Codec API (TS013).
// Written for Kera from the frame layout in Milesight's public documentation
// (Milesight-IoT/SensorDecoders, AM_Series/AM103/README.md): a sequence of
// channel id, channel type and value.
//   0x01 0x75  battery, 1 byte, %
//   0x03 0x67  temperature, int16 little-endian, 0.1 degC
//   0x04 0x68  humidity, 1 byte, 0.5 %RH
//   0x07 0x7D  CO2, uint16 little-endian, ppm
//   0x20 0xCE  stored history record, 9 bytes (skipped: the live frames carry the values)
function decodeUplink(input) {
  var b = input.bytes;
  var data = {};
  var i = 0;
  while (i + 1 < b.length) {
    var channel = b[i], type = b[i + 1];
    i += 2;
    if (channel === 0x01 && type === 0x75) {
      data.battery = b[i];
      i += 1;
    } else if (channel === 0x03 && type === 0x67) {
      var t = b[i] | (b[i + 1] << 8);
      if (t > 0x7fff) t -= 0x10000;
      data.temperature = t / 10;
      i += 2;
    } else if (channel === 0x04 && type === 0x68) {
      data.humidity = b[i] / 2;
      i += 1;
    } else if (channel === 0x07 && type === 0x7d) {
      data.co2 = b[i] | (b[i + 1] << 8);
      i += 2;
    } else if (channel === 0x20 && type === 0xce) {
      i += 9;
    } else {
      return { errors: ["unknown channel 0x" + channel.toString(16) + " type 0x" + type.toString(16)] };
    }
  }
  if (i > b.length) {
    return { errors: ["frame ends inside a value"] };
  }
  return { data: data, warnings: [], errors: [] };
}
