#!/usr/bin/python3
"""A second, independent SunSpec device for the adapter's tests: Debian's
python3-pymodbus serving a PV inverter's registers over Modbus TCP, laid out
here from the SunSpec model definitions (not from the adapter's tables).

    sunspec_pymodbus_server.py PORT

Models 1 (common), 103 (three-phase inverter), 121 (settings), 123 (controls)
at base address 40000. Scale factors: W_SF 0, V_SF 0, Hz_SF -1, WMax_SF 0,
WMaxLimPct_SF 0. Serves 127.0.0.1:PORT until killed.
"""
import sys

from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext)
from pymodbus.server import StartTcpServer

NI = 0xFFFF  # "not implemented" for uint16 points


def model(model_id, length, points):
    regs = [model_id, length] + [NI] * length
    for offset, value in points.items():
        regs[offset] = value & 0xFFFF
    return regs


def main():
    port = int(sys.argv[1])
    regs = [0x5375, 0x6E53]
    regs += model(1, 66, {66: 1})
    # 103: PhVphA/B/C 230 V (V_SF 0 at 13), W 3457 W (W_SF 0 at 15), Hz 50.0 as
    # 500 (Hz_SF -1 at 17), VAr 0 (VAr_SF 0 at 21), St MPPT (38), Evt1 0 (40-41).
    regs += model(103, 50, {10: 230, 11: 230, 12: 230, 13: 0, 14: 3457, 15: 0, 16: 500,
                            17: -1, 20: 0, 21: 0, 38: 4, 40: 0, 41: 0})
    # 121: WMax 6000 W (WMax_SF 0 at 22).
    regs += model(121, 30, {2: 6000, 22: 0})
    # 123: WMaxLimPct 100 % (SF 0 at 23), WMaxLim_Ena 0.
    regs += model(123, 24, {5: 100, 9: 0, 23: 0})
    regs += [0xFFFF, 0]
    store = ModbusSlaveContext(hr=ModbusSequentialDataBlock(40000, regs), zero_mode=True)
    context = ModbusServerContext(slaves=store, single=True)
    StartTcpServer(context=context, address=("127.0.0.1", port))


if __name__ == "__main__":
    main()
