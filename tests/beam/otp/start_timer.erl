#!/usr/bin/env escript
%% Item 6: erlang:start_timer delivers {timeout, TRef, Msg}; read_timer and cancel_timer.
main(_) ->
    T = erlang:start_timer(50, self(), hello),
    io:format("read_timer is an integer: ~p~n", [is_integer(erlang:read_timer(T))]),
    receive {timeout, T, hello} -> io:format("got {timeout, TRef, hello}~n") end,
    io:format("read_timer after: ~p~n", [erlang:read_timer(T)]),
    io:format("cancel_timer after: ~p~n", [erlang:cancel_timer(T)]),
    T2 = erlang:start_timer(5000, self(), later),
    io:format("cancel pending is an integer: ~p~n", [is_integer(erlang:cancel_timer(T2))]),
    receive M -> io:format("unexpected ~p~n", [M]) after 100 -> io:format("nothing after cancel~n") end,
    S = erlang:send_after(10, self(), plain),
    receive plain -> io:format("send_after delivers the bare message~n") end,
    false = erlang:read_timer(S).
